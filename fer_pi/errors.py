"""Errors a fer_pi user can cause; the CLI prints them as one line and exits 2."""


class FerPiError(Exception):
    """Base class of user-facing fer_pi errors (bad config value, missing weights, bad data)."""


class WeightsNotFoundError(FerPiError):
    """Requested pretrained weights are not available locally (no download is attempted)."""


class DataError(FerPiError):
    """A manifest or image needed for training/evaluation is missing or malformed."""
