"""Exception types raised to users of audiosr-plug."""


class AudioSRError(Exception):
    """Base class of every error audiosr-plug raises on purpose."""


class AudioInputError(AudioSRError, ValueError):
    """Audio that cannot be used: missing, unreadable, empty, non-finite, or out of range.

    The message names the file (when there is one), what is wrong and what to do.
    """


class WeightsError(AudioSRError):
    """Model weights that cannot be found, downloaded or converted."""


class DeviceError(AudioSRError, ValueError):
    """A requested device that does not exist on this machine (the message lists those that
    do)."""


class TrainingError(AudioSRError):
    """A fine-tuning run that cannot start or go on: no usable training audio, overlapping
    training and validation sets, a starting model without the weights training needs, or out of
    memory (the message says which setting to change)."""
