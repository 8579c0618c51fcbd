"""Project exceptions: the CLI turns each into one line on stderr and a non-zero exit."""


class VganError(Exception):
    """An expected failure with a message a user can act on."""

    exit_code = 1


class ParamsError(VganError):
    """A bad parameter file, key or value."""

    exit_code = 2


class DataError(VganError):
    """Input data that cannot be used (no clips, bad checksum, unreadable archive)."""


class TrainingError(VganError):
    """Training cannot continue (non-finite losses, incompatible checkpoint)."""


class MissingWeightsError(VganError):
    """A metric needs a weights file the user has not supplied."""


class TrackingError(VganError):
    """The MLflow tracking server or registry cannot be used."""
