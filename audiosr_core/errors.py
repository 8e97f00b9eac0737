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
