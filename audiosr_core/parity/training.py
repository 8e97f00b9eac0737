"""Check our fine-tuning step against an official training-objective fixture, stage by stage.

A training fixture (``../shared/reference/parity/train-dev``) holds ``train_settings.json``
(pointing at the checkpoint and config of an inference fixture), ``inputs/<clip>.npz``,
``expected/<case>.npz`` and a README whose "Recommended tolerances" table is used. For every
case the runner checks, each stage fed the stored arrays of the stage before (*isolated*):

- the draws: ``torch.manual_seed(seed)`` then :meth:`Draws.official` gives the recorded t,
  drop decision, call order and noises;
- z0, x_t, v target, condition, the unconditional value; loss from stored UNet output;
- both VAE encoders, one UNet call;
- loss and backward from stored z0/condition/t/noise: the tracked gradients, every UNet
  tensor's gradient norm, the global norm;
- one AdamW step and one EMA update from stored values;

and then the whole step *chained* from the inputs with injected draws: every intermediate, the
loss, the gradients, the parameters after AdamW and their EMA shadows (starting from the
checkpoint's ``model_ema.*``).

Usage::

    python -m audiosr_core.parity ../shared/reference/parity/train-dev
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..train.model_io import load_start
from ..train.objective import EMA, Draws, FineTuneModel, make_optimizer
from .checks import Check, print_report

SETTINGS_NAME = "train_settings.json"
#: Tolerance of the draws themselves (Box-Muller in float32 may take other SIMD paths).
DRAW_TOLERANCE = 1e-6
#: The README's rule for the first AdamW step's ill-conditioned elements: tolerances apply where
#: |grad| >= GRAD_MASK * max|grad|; elsewhere only |p_after - p_before (1 - lr wd)| <= STEP_BOUND.
GRAD_MASK = 1e-3
STEP_BOUND = 1.0001e-4


@dataclass(frozen=True)
class Tolerance:
    """``kind``: "abs" (max |a - e| <= a_), "max_rel" (<= a_ * max|e|), "rel" (<= a_ * |e|),
    "ref_rel" (elementwise |a - e| <= a_ |e| + b_)."""

    kind: str
    a: float
    b: float = 0.0


def is_training_fixture(folder: str | Path) -> bool:
    return (Path(folder) / SETTINGS_NAME).is_file()


def parse_training_tolerances(readme: str) -> dict[tuple[str, str], Tolerance]:
    """The "Recommended tolerances" table of a training fixture README.

    Keys are ``(name, mode)`` with mode ``"isolated"``, ``"backward"`` (the isolated loss +
    backward rows and the "same:" rows after them) or ``"chained"``; names may hold ``*``
    (matched with :func:`fnmatch.fnmatch`); ``p{i}`` rows are expanded to p0, p1, p2.
    """
    start = readme.find("ecommended tolerances")
    if start < 0:
        raise ValueError("the README has no 'Recommended tolerances' table")
    table: dict[tuple[str, str], Tolerance] = {}
    mode = "isolated"
    seen_row = False
    for line in readme[start:].splitlines()[1:]:
        if seen_row and not line.startswith("|"):
            break
        cells = [c.strip().replace("\x00", "|")
                 for c in line.replace("\\|", "\x00").strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0].startswith(("comparison", "---")):
            continue
        seen_row = True
        what, value = cells
        if what.startswith("chained"):
            mode = "chained"
        elif what.startswith("same"):
            pass                                   # the mode of the row before
        elif "backward" in what:
            mode = "backward"
        else:
            mode = "isolated"
        tol = _parse_value(value)
        if tol is None:
            continue
        names = re.findall(r"`([A-Za-z0-9_{}*]+)`", re.sub(r"\([^)]*\)", "", what))
        if "presence" in what:                     # "presence / absence of `cond_*`" is exact
            names = [n for n in names if not n.startswith("cond_")]
        for name in names:
            for expanded in ([name.replace("{i}", str(i)) for i in range(3)]
                             if "{i}" in name else [name]):
                table[(expanded, mode)] = tol
    if not table:
        raise ValueError("the README's tolerance table has no readable row")
    return table


def _parse_value(value: str) -> Tolerance | None:
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?e-?\d+", value)]
    if "exact" in value:
        return Tolerance("abs", 0.0)
    if "max" in value and numbers:
        return Tolerance("max_rel", numbers[0])
    if "ref" in value and len(numbers) == 2:
        return Tolerance("ref_rel", numbers[0], numbers[1])
    if value.startswith("relative") and numbers:
        return Tolerance("rel", numbers[0])
    if numbers:
        return Tolerance("abs", numbers[0])
    return None


class TrainingParityRunner:
    """Builds the fixture's model with our code and checks one official training step."""

    def __init__(self, fixture: str | Path) -> None:
        self.dir = Path(fixture)
        settings_path = self.dir / SETTINGS_NAME
        for needed in (SETTINGS_NAME, "inputs", "expected", "README.md"):
            if not (self.dir / needed).exists():
                raise FileNotFoundError(f"{self.dir}: not a training fixture (missing {needed})")
        self.settings = json.loads(settings_path.read_text())
        checkpoint = (self.dir / self.settings["checkpoint"]).resolve()
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{self.dir}: the checkpoint it names ({checkpoint}) is "
                                    "missing")
        start = load_start(checkpoint, progress=False)
        self.model: FineTuneModel = start.model
        self.ema_shadows = start.ema_shadows
        self.ema_updates = start.ema_updates
        self.initial = {k: v.clone() for k, v in self.model.unet.state_dict().items()}
        self.tolerances = parse_training_tolerances((self.dir / "README.md").read_text())
        self.checks: list[Check] = []

    def stems(self) -> list[str]:
        return sorted(p.stem for p in (self.dir / "expected").glob("*.npz"))

    # ------------------------------------------------------------------------------ comparison
    def _tolerance(self, name: str, mode: str) -> Tolerance | None:
        if (name, mode) in self.tolerances:
            return self.tolerances[(name, mode)]
        for (pattern, m), tol in self.tolerances.items():
            if m == mode and fnmatch.fnmatch(name, pattern):
                return tol
        return None

    def _compare(self, stem: str, name: str, actual, expected, mode: str = "isolated",
                 mask: np.ndarray | None = None, tolerance: Tolerance | None = None) -> None:
        tol = tolerance or self._tolerance(name, mode)
        if tol is None:
            raise KeyError(f"the fixture README gives no {mode} tolerance for {name!r}")
        a = np.asarray(actual.detach().cpu() if torch.is_tensor(actual) else actual,
                       dtype=np.float64)
        e = np.asarray(expected, dtype=np.float64)
        if a.shape != e.shape:
            self.checks.append(Check(stem, name, mode, float("inf"), 0.0,
                                     f"shape {a.shape} != {e.shape}"))
            return
        detail = ""
        if mask is not None:
            a, e = a[mask], e[mask]
            detail = f"{int(mask.sum())}/{mask.size} elements with |grad| >= 1e-3 max"
        diff = np.abs(a - e)
        if tol.kind == "ref_rel":
            ratio = diff / (tol.a * np.abs(e) + tol.b)
            self.checks.append(Check(stem, name, mode, float(ratio.max(initial=0.0)), 1.0,
                                     f"error / ({tol.a:g} |ref| + {tol.b:g})"))
            return
        # "rel" rows are scalars, so |ref| and max|ref| are the same number
        limit = tol.a if tol.kind == "abs" else tol.a * float(np.abs(e).max(initial=0.0))
        if tol.kind != "abs":
            what = "max|ref|" if tol.kind == "max_rel" else "|ref|"
            detail = (detail + "; " if detail else "") + f"{tol.a:g} x {what}"
        self.checks.append(Check(stem, name, mode, float(diff.max(initial=0.0)), limit, detail))

    def _exact(self, stem: str, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(stem, name, "isolated", 0.0 if ok else 1.0, 0.0, detail))

    # ---------------------------------------------------------------------------------- stages
    def _batch(self, names: list[str]) -> dict[str, torch.Tensor]:
        clips = []
        for name in names:
            with np.load(self.dir / "inputs" / f"{name}.npz") as data:
                clips.append({k: data[k] for k in ("log_mel_spec", "lowpass_mel")})
        return {k: torch.from_numpy(np.stack([c[k] for c in clips])) for k in clips[0]}

    def _reset(self) -> None:
        self.model.unet.load_state_dict(self.initial, strict=True)
        self.model.unet.zero_grad(set_to_none=True)

    def run(self, stem: str) -> None:
        with np.load(self.dir / "expected" / f"{stem}.npz") as data:
            e = {k: data[k] for k in data.files}
        m = self.model
        s = m.scale_factor
        p_uncond = float(self.settings["objective"]["unconditional_prob_cfg"])
        lr = float(e["lr"])
        names = [str(n) for n in e["param_names"]]
        ours = [n.removeprefix("model.diffusion_model.") for n in names]
        dropped = bool(e["cfg_drop"][0])
        batch = self._batch([str(c) for c in e["clip_names"]])
        frames = batch["log_mel_spec"].shape[1]
        shape = m.latent_shape(len(e["clip_names"]), frames)
        T = lambda key: torch.from_numpy(e[key])  # noqa: E731
        cmp = lambda name, actual, mode="isolated", **kw: self._compare(  # noqa: E731
            stem, name, actual, e[name], mode, **kw)

        # draws: torch.manual_seed(seed) and the official order reproduce the recorded ones
        if bool(e["draws_natural"]):
            torch.manual_seed(int(e["seed"]))
            natural = Draws.official(shape, p_uncond, timesteps=m.timesteps)
            order = ["randn", "rand"] + ([] if natural.cond_noise is None else ["randn"]) + [
                "randint", "randn_like"]
            self._exact(stem, "rng_call_order", order == [str(x) for x in e["rng_call_order"]],
                        " ".join(order))
            self._exact(stem, "t", bool(torch.equal(natural.t, T("t"))),
                        f"t = {natural.t.tolist()}")
            self._exact(stem, "cfg_drop", (natural.cfg_u < p_uncond) == dropped)
            self._exact(stem, "cond_noise presence", (natural.cond_noise is None) == dropped)
            draw = Tolerance("abs", DRAW_TOLERANCE)
            cmp("post_noise", natural.post_noise, tolerance=draw)
            cmp("cfg_u", torch.tensor([natural.cfg_u]), tolerance=draw)
            cmp("noise", natural.noise, tolerance=draw)
            if natural.cond_noise is not None:
                cmp("cond_noise", natural.cond_noise, tolerance=draw)
        self._exact(stem, "cond_* presence", ("cond_mean" in e) != dropped)

        # isolated elementwise stages
        cmp("z0", s * (T("post_mean") + T("post_std") * T("post_noise")))
        cmp("x_t", m.q_sample(T("z0"), T("t"), T("noise")))
        cmp("v_target", m.v_target(T("z0"), T("t"), T("noise")))
        if dropped:
            value = torch.tensor(m.model.config.unconditional_value, dtype=torch.float32)
            cmp("cond_after_drop", value.expand(shape))
        else:
            cmp("cond_after_drop", T("cond_mean") + T("cond_std") * T("cond_noise"))
        cmp("uncond_unet_value",
            s * torch.tensor(m.model.config.unconditional_value, dtype=torch.float32))
        loss_simple = ((T("v_target") - T("unet_out")) ** 2).mean(dim=(1, 2, 3))
        cmp("loss_simple", loss_simple)
        cmp("loss", loss_simple.mean())

        # isolated networks
        with torch.no_grad():
            mean, std = m.encode_target(batch["log_mel_spec"])
            cmp("post_mean", mean)
            cmp("post_std", std)
            if not dropped:
                mean, std = m.encode_condition(batch["lowpass_mel"])
                cmp("cond_mean", mean)
                cmp("cond_std", std)
            xin = torch.cat([T("x_t"), s * T("cond_after_drop")], dim=1)
            cmp("unet_out", m.unet(xin, T("t")))

        # isolated loss + backward from stored z0, condition, t, noise
        self._reset()
        m.train()
        *_, ls = m.diffusion_loss(T("z0"), T("cond_after_drop"), T("t"), T("noise"))
        loss = ls.mean()
        loss.backward()
        cmp("loss", loss.detach(), "backward")
        params = dict(m.unet.named_parameters())
        for i, name in enumerate(ours):
            cmp(f"p{i}_grad", params[name].grad, "backward")
        grad_names = [str(n).removeprefix("diffusion_model.") for n in e["grad_norm_names"]]
        with_grad = [n for n, p in params.items() if p.grad is not None]
        self._exact(stem, "gradient set", with_grad == grad_names,
                    f"{len(with_grad)} UNet tensors with a gradient, fixture {len(grad_names)}")
        norms = np.array([float(params[n].grad.double().norm()) for n in grad_names
                          if n in params and params[n].grad is not None])
        if len(norms) == len(grad_names):
            cmp("grad_norms", norms, "backward")
            cmp("grad_global_norm", np.sqrt(np.sum(norms ** 2)), "backward")

        # isolated AdamW and EMA from stored values
        for i in range(len(names)):
            p = torch.nn.Parameter(T(f"p{i}_before").clone())
            p.grad = T(f"p{i}_grad").clone()
            opt = make_optimizer([p], lr=lr, weight_decay=float(e["weight_decay"]))
            opt.step()
            cmp(f"p{i}_after", p.detach())
            holder = torch.nn.Module()
            holder.w = torch.nn.Parameter(T(f"p{i}_ema_before").clone())
            ema = EMA(holder, num_updates=int(e["ema_num_updates_before"]))
            holder.w.data.copy_(T(f"p{i}_after"))
            ema.update(holder)
            cmp(f"p{i}_ema_after", ema.shadows["w"])
            if i == 0:
                self._exact(stem, "ema_num_updates_after",
                            ema.num_updates == int(e["ema_num_updates_after"]))
                cmp("ema_one_minus_decay",
                    1.0 - EMA(holder, num_updates=int(e["ema_num_updates_before"])).current_decay(),
                    tolerance=Tolerance("abs", 0.0))

        # chained: the whole step from the inputs with the recorded draws injected
        self._reset()
        m.train()
        draws = Draws(T("post_noise"), float(e["cfg_u"][0]),
                      None if dropped else T("cond_noise"), T("t"), T("noise"))
        out = m.loss(batch["log_mel_spec"], batch["lowpass_mel"], draws, p_uncond=p_uncond)
        self._exact(stem, "cfg_drop (chained)", out.dropped == dropped)
        for name, value in (("post_mean", out.post_mean), ("post_std", out.post_std),
                            ("z0", out.z0), ("cond_after_drop", out.cond), ("x_t", out.x_t),
                            ("v_target", out.v_target), ("unet_out", out.unet_out),
                            ("loss_simple", out.loss_simple), ("loss", out.loss)):
            cmp(name, value.detach(), "chained")
        if not dropped:
            cmp("cond_mean", out.cond_mean, "chained")
            cmp("cond_std", out.cond_std, "chained")
        out.loss.backward()
        params = dict(m.unet.named_parameters())
        for i, name in enumerate(ours):
            cmp(f"p{i}_grad", params[name].grad, "chained")
        opt = make_optimizer(m.unet.parameters(), lr=lr, weight_decay=float(e["weight_decay"]))
        opt.step()
        ema = EMA(m.unet, num_updates=self.ema_updates, shadows=self.ema_shadows)
        ema.update(m.unet)
        for i, name in enumerate(ours):
            grad = np.abs(e[f"p{i}_grad"])
            mask = grad >= GRAD_MASK * grad.max()
            cmp(f"p{i}_after", params[name].detach(), "chained", mask=mask)
            cmp(f"p{i}_ema_after", ema.shadows[name], "chained", mask=mask)
            if not mask.all():
                moved = np.abs(params[name].detach().numpy().astype(np.float64)
                               - e[f"p{i}_before"] * (1 - lr * float(e["weight_decay"])))
                self.checks.append(Check(stem, f"p{i}_after step", "chained",
                                         float(moved[~mask].max()), STEP_BOUND,
                                         "ill-conditioned elements: |step| bound"))
        m.eval()
        self._reset()

    def report(self, stream=sys.stdout) -> bool:
        """Print one line per check; True if all pass."""
        return print_report(self.checks, stream)
