// audiosr-plug app: pick, drop or record audio, submit a job, poll it, show the result.
// Plain JavaScript, no libraries, no build step. Recording encodes 16-bit PCM WAV from the
// Web Audio API, so the server (libsndfile) always decodes it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("app").dataset.config);
  const POLL_MS = 400;
  const HEADERS = { "X-Requested-With": "audiosr-plug-app" };
  let chosen = null;       // the File (or recorded WAV) to upload
  let busy = false;

  // ------------------------------------------------------------------------ helpers
  function megabytes(n) {
    return n >= 1048576 ? (n / 1048576).toFixed(n >= 10485760 ? 0 : 1) + " MB"
                        : Math.max(1, Math.round(n / 1024)) + " KB";
  }
  function khz(hz) { return (hz / 1000).toFixed(hz % 1000 === 0 ? 0 : 1); }
  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }
  function setStatus(text, fraction, visible) {
    $("status").textContent = text;
    const bar = $("progress");
    bar.hidden = !visible;
    if (fraction === null || fraction === undefined) bar.removeAttribute("value");
    else bar.value = fraction;
  }
  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = String(value);
    o.textContent = label;
    select.appendChild(o);
    return o;
  }
  function updateButton() { $("enhance").disabled = busy || !chosen; }

  // ----------------------------------------------------------------------- settings
  function selectedModel() {
    return config.models.find((m) => m.key === $("model").value) || config.models[0];
  }
  function updateModel() {
    const model = selectedModel();
    $("model-note").textContent = model.note;
    const box = $("diffusion");
    box.hidden = !model.diffusion;
    box.disabled = !model.diffusion;
  }
  function fillSettings() {
    $("limit").textContent = megabytes(config.max_upload_bytes);
    for (const m of config.models) option($("model"), m.key, m.label);
    $("model").value = config.selected;
    for (const f of config.formats) option($("format"), f, f.toUpperCase());
    for (const r of config.output_rates) {
      const o = option($("output-rate"), r, khz(r) + " kHz");
      if (r === 48000) o.selected = true;
    }
    $("output-rate").disabled = config.output_rates.length < 2;
    $("steps").value = config.steps.default;
    $("guidance").value = config.guidance_scale.default;
    $("seed").value = config.seed.default;
    $("seed").max = config.seed.max;
    $("model").addEventListener("change", updateModel);
    updateModel();
  }

  // ------------------------------------------------------------------- choosing audio
  function choose(file, label) {
    showError("");
    if (file && file.size > config.max_upload_bytes) {
      chosen = null;
      showError(`${file.name} is ${megabytes(file.size)}, larger than the ` +
                `${megabytes(config.max_upload_bytes)} upload limit; cut or compress it ` +
                "(FLAC is about half the size of WAV).");
    } else {
      chosen = file;
    }
    $("chosen").textContent = chosen ? `${label || chosen.name} (${megabytes(chosen.size)})` : "";
    updateButton();
  }
  function wireDrop() {
    const drop = $("drop");
    $("file").addEventListener("change", () => {
      $("recording-preview").hidden = true;
      choose($("file").files[0] || null);
    });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      const file = e.dataTransfer.files[0];
      if (file) { $("recording-preview").hidden = true; choose(file); }
    });
  }

  // ------------------------------------------------------------------------ recording
  const recorder = { ctx: null, stream: null, node: null, chunks: [], length: 0, timer: 0 };

  function encodeWav(chunks, length, rate) {
    const buffer = new ArrayBuffer(44 + 2 * length);
    const view = new DataView(buffer);
    const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
    text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
    view.setUint16(22, 1, true); view.setUint32(24, rate, true);
    view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
    text(36, "data"); view.setUint32(40, 2 * length, true);
    let at = 44;
    for (const chunk of chunks) {
      for (let i = 0; i < chunk.length; i++, at += 2) {
        const s = Math.max(-1, Math.min(1, chunk[i]));
        view.setInt16(at, s < 0 ? s * 32768 : s * 32767, true);
      }
    }
    return new Blob([buffer], { type: "audio/wav" });
  }
  async function startRecording() {
    showError("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("This browser gives no microphone access here (it needs http://localhost or https).");
      return;
    }
    try {
      recorder.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError(`The microphone could not be opened (${err.name}: ${err.message}).`);
      return;
    }
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(recorder.stream);
    const node = ctx.createScriptProcessor(4096, 2, 1);
    const mute = ctx.createGain();
    mute.gain.value = 0;
    const maxSamples = Math.floor((config.max_upload_bytes - 1024) / 2);
    recorder.chunks = []; recorder.length = 0;
    node.onaudioprocess = (e) => {
      const input = e.inputBuffer;
      const mono = new Float32Array(input.length);
      for (let c = 0; c < input.numberOfChannels; c++) {
        const data = input.getChannelData(c);
        for (let i = 0; i < data.length; i++) mono[i] += data[i] / input.numberOfChannels;
      }
      recorder.chunks.push(mono);
      recorder.length += mono.length;
      if (recorder.length >= maxSamples) stopRecording();
    };
    source.connect(node); node.connect(mute); mute.connect(ctx.destination);
    Object.assign(recorder, { ctx, node, started: Date.now() });
    recorder.timer = setInterval(() => {
      $("record-time").textContent = `recording ${((Date.now() - recorder.started) / 1000).toFixed(0)} s`;
    }, 250);
    $("record").textContent = "■ Stop";
    $("record").classList.add("recording");
  }
  function stopRecording() {
    if (!recorder.ctx) return;
    clearInterval(recorder.timer);
    recorder.node.disconnect();
    recorder.stream.getTracks().forEach((t) => t.stop());
    const rate = recorder.ctx.sampleRate;
    recorder.ctx.close();
    recorder.ctx = null;
    $("record").textContent = "● Record";
    $("record").classList.remove("recording");
    $("record-time").textContent = "";
    if (!recorder.length) { showError("Nothing was recorded."); return; }
    const wav = encodeWav(recorder.chunks, recorder.length, rate);
    const file = new File([wav], "recording.wav", { type: "audio/wav" });
    const preview = $("recording-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("file").value = "";
    choose(file, `recording, ${(recorder.length / rate).toFixed(1)} s at ${khz(rate)} kHz`);
  }
  function wireRecording() {
    $("record").addEventListener("click", () => (recorder.ctx ? stopRecording() : startRecording()));
  }

  // ----------------------------------------------------------------------------- jobs
  async function readJson(resp) {
    try { return await resp.json(); } catch (_) { return {}; }
  }
  async function submit(event) {
    event.preventDefault();
    if (!chosen || busy) return;
    if (recorder.ctx) stopRecording();
    showError("");
    $("result").hidden = true;
    const form = new FormData();
    form.append("audio", chosen, chosen.name || "recording.wav");
    form.append("model", $("model").value);
    form.append("format", $("format").value);
    form.append("output_rate", $("output-rate").value);
    if (selectedModel().diffusion) {
      form.append("steps", $("steps").value);
      form.append("guidance_scale", $("guidance").value);
      form.append("seed", $("seed").value);
    }
    busy = true; updateButton();
    setStatus("uploading…", null, true);
    let resp;
    try {
      resp = await fetch("/api/jobs", { method: "POST", body: form, headers: HEADERS });
    } catch (err) {
      return fail(`The upload failed (${err.message}); is the app still running?`);
    }
    const body = await readJson(resp);
    if (resp.status === 413) {
      return fail(body.error || `The file is larger than the ${megabytes(config.max_upload_bytes)} upload limit.`);
    }
    if (!resp.ok) return fail(body.error || `The upload was refused (HTTP ${resp.status}).`);
    poll(body.status_url);
  }
  function fail(message) {
    busy = false; updateButton();
    setStatus("", null, false);
    showError(message);
  }
  async function poll(url) {
    let resp;
    try { resp = await fetch(url, { cache: "no-store" }); } catch (err) {
      return fail(`Lost contact with the app (${err.message}).`);
    }
    const job = await readJson(resp);
    if (!resp.ok) return fail(job.error || `HTTP ${resp.status}`);
    if (job.state === "queued") {
      setStatus(`waiting: number ${job.position} in the ${job.model} queue`, null, true);
    } else if (job.state === "running") {
      const pct = job.fraction === null ? "" : ` (${Math.round(100 * job.fraction)} %)`;
      setStatus(job.stage + pct, job.fraction, true);
    } else if (job.state === "done") {
      busy = false; updateButton();
      setStatus(`done in ${job.seconds.toFixed(1)} s`, 1, false);
      return showResult(job);
    } else {
      return fail(job.error || "The job failed.");
    }
    setTimeout(() => poll(url), POLL_MS);
  }

  // --------------------------------------------------------------------------- result
  function ticks(box, values, place) {
    box.textContent = "";
    for (const [value, label] of values) {
      const span = document.createElement("span");
      span.textContent = label;
      place(span, value);
      box.appendChild(span);
    }
  }
  function axes(role, top, duration) {
    const step = top > 24000 ? 8000 : 4000;
    const ys = [];
    for (let f = 0; f <= top + 1; f += step) ys.push([f, `${f / 1000} kHz`]);
    ticks($(`yaxis-${role}`), ys, (s, f) => { s.style.bottom = `${(100 * f) / top}%`; });
    const xs = [[0, "0 s"], [0.5, `${(duration / 2).toFixed(duration < 10 ? 1 : 0)} s`],
                [1, `${duration.toFixed(duration < 10 ? 1 : 0)} s`]];
    ticks($(`xaxis-${role}`), xs, (s, x) => { s.style.left = `${100 * x}%`; });
  }
  function edges(role, bands, top) {
    const box = $(`edges-${role}`);
    box.textContent = "";
    const seen = [];
    for (const b of bands) {
      if (b.status !== "enhanced" || seen.some((hz) => Math.abs(hz - b.edge_hz) < 100)) continue;
      seen.push(b.edge_hz);
      const line = document.createElement("div");
      line.className = "edge";
      line.style.bottom = `${(100 * Math.min(b.edge_hz, top)) / top}%`;
      const label = document.createElement("span");
      label.textContent = `input edge ${khz(b.edge_hz)} kHz`;
      line.appendChild(label);
      box.appendChild(line);
    }
  }
  function describeBands(bands) {
    return bands.map((b) => {
      const who = bands.length > 1 ? `Channel ${b.channel}: ` : "";
      return `${who}content up to ${khz(b.edge_hz)} kHz → ${b.description}`;
    }).join(" · ");
  }
  function showResult(job) {
    const r = job.result;
    const top = r.spectrogram.top_hz;
    $("result-name").textContent = `${job.filename} · ${job.model}` +
      (r.diffusion ? ` · seed ${r.seed}` : "");
    $("bands").textContent = describeBands(r.bands);
    $("before-info").textContent = `${khz(r.input.sample_rate)} kHz, ${r.input.channels} ch`;
    $("after-info").textContent = `${khz(r.output.sample_rate)} kHz, ${r.output.channels} ch`;
    $("audio-before").src = job.urls.audio_before;
    $("audio-after").src = job.urls.audio_after;
    $("spec-before").src = job.urls.spectrogram_before;
    $("spec-after").src = job.urls.spectrogram_after;
    for (const role of ["before", "after"]) axes(role, top, r.output.duration_s);
    edges("before", r.bands, top);
    edges("after", r.bands, top);
    $("top-khz").textContent = khz(top);
    const [low, high] = config.db_range;
    $("db-low").textContent = `${low} dBFS`;
    $("db-high").textContent = `${high} dBFS`;
    const stops = config.colours.map((c, i, all) =>
      `rgb(${c.join(",")}) ${(100 * i) / (all.length - 1)}%`);
    $("colourbar").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const link = $("download");
    link.href = job.urls.download;
    link.setAttribute("download", r.download_name);
    link.textContent = `Download ${r.download_name}`;
    $("gain").textContent = r.output_gain_db < 0
      ? `lowered by ${(-r.output_gain_db).toFixed(2)} dB so the added band does not clip` : "";
    $("result").hidden = false;
  }

  // ----------------------------------------------------------------------------- start
  fillSettings();
  wireDrop();
  wireRecording();
  $("job-form").addEventListener("submit", submit);
  updateButton();
})();
