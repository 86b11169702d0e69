"""Error and warning classes for the whole package.

Every error satchel raises on purpose derives from :class:`SatchelError`. Messages are
one line, name the problem (file, column, type, limit) and never echo the payload.
Transport layers map these classes to their own status codes; core knows no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence


class SatchelError(Exception):
    """Base class of every error satchel raises on purpose."""


class ModelFormatError(SatchelError):
    """A model directory, its MLmodel manifest or one of its files is unusable."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class IntegrityError(ModelFormatError):
    """A file in a model directory does not match the digest recorded at save time."""

    def __init__(self, message: str, *, file: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.file = file


class FlavorNotFoundError(SatchelError, LookupError):
    """No installed plugin provides the flavor (or loader module) a model needs."""

    def __init__(self, message: str, *, flavor: str | None = None) -> None:
        super().__init__(message)
        self.flavor = flavor


class FlavorLoadError(SatchelError):
    """A flavor plugin was found but could not be imported or does not fit the protocol."""

    def __init__(self, message: str, *, flavor: str) -> None:
        super().__init__(message)
        self.flavor = flavor


class MissingLibraryError(FlavorLoadError, ImportError):
    """A flavor's own library is not installed; the message names the extra to install."""

    def __init__(self, message: str, *, flavor: str, module: str) -> None:
        super().__init__(message, flavor=flavor)
        self.module = module


class MlflowNameError(FlavorLoadError):
    """An MLflow model (a custom model's pickle, a models-from-code script) uses an MLflow
    name satchel does not provide without mlflow; ``mlflow_name`` is that name."""

    def __init__(self, message: str, *, mlflow_name: str) -> None:
        super().__init__(message, flavor="mlflow_pyfunc")
        self.mlflow_name = mlflow_name


class UnsupportedModelError(SatchelError, TypeError):
    """``save_model`` was given an object that no installed flavor can save."""


class CodeNotAllowedError(SatchelError):
    """Loading would run code stored in the model (pickle, cloudpickle, a Python source
    file, ``torch.load`` ...), and the caller passed ``allow_code=False``."""


# The name before ``allow_code`` covered more than pickle; kept so existing handlers work.
PickleNotAllowedError = CodeNotAllowedError


class UntrustedTypeError(SatchelError):
    """A skops file holds a type the caller has not declared as trusted."""

    def __init__(self, message: str, *, types: Sequence[str]) -> None:
        super().__init__(message)
        self.types = list(types)


class SignatureError(SatchelError, ValueError):
    """Input data or params do not fit the model's signature.

    Attributes name what went wrong so transports can build structured replies.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        expected: str | None = None,
        given: str | None = None,
    ) -> None:
        super().__init__(message)
        self.column = column
        self.expected = expected
        self.given = given


class InputFormatError(SatchelError, ValueError):
    """Input data could not be parsed (malformed JSON, CSV, Parquet, unknown format keys)."""


class LimitExceededError(InputFormatError):
    """An input is over a size limit once decoded (rows, decoded bytes); ``limit`` names
    the setting that refused it."""

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class UnsupportedMediaTypeError(InputFormatError):
    """The content type or charset of an input is not one satchel reads."""


class ExampleError(SatchelError, ValueError):
    """An input example cannot be serialised, or a saved one cannot be read back."""


class PredictionError(SatchelError):
    """The model itself raised while predicting on input that passed the signature.

    ``error_class`` is the model's exception class name; the message is the model's own.
    """

    def __init__(self, message: str, *, error_class: str) -> None:
        super().__init__(message)
        self.error_class = error_class


class ConversionError(SatchelError):
    """A model could not be converted, or the converted model disagrees with the original."""


class SatchelWarning(UserWarning):
    """Base class of satchel's warnings."""


class ExtraColumnsWarning(SatchelWarning):
    """Input had columns the signature does not name; they were dropped."""


class UnknownParamsWarning(SatchelWarning):
    """Params were given that the param schema does not declare; they were ignored."""


class RequirementsWarning(SatchelWarning):
    """A model's requirements could not be inferred from what its code imports."""


class PythonVersionWarning(SatchelWarning):
    """The model was saved under a different Python minor version than the running one."""


class LibraryVersionWarning(SatchelWarning):
    """The model was saved with a newer release of its library than the installed one."""

    def __init__(self, message: str, *, distribution: str, saved: str, installed: str) -> None:
        super().__init__(message)
        self.distribution = distribution
        self.saved = saved
        self.installed = installed


class DestinationExistsError(SatchelError, FileExistsError):
    """A save would replace an existing, non-empty directory and ``overwrite`` was not set."""


class ModelExistsError(DestinationExistsError):
    """A model save lost the race for its path: something else is there (decided at the
    final rename, so of several processes saving to one new path exactly one wins)."""


class UnverifiedModelError(ModelFormatError):
    """The caller required digests and the model directory records none."""


class ModelNotFoundError(SatchelError, LookupError):
    """A request named a model, or a model version, that is not being served."""

    def __init__(self, message: str, *, name: str, version: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.version = version


class ServerBusyError(SatchelError):
    """Every worker thread is busy (or held by a predict call abandoned after a timeout);
    retry later."""


class ModelLoadError(SatchelError):
    """A model a running server was asked to load (or reload) failed to load or verify;
    the model served before, if any, keeps serving."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class ModelNotReadyError(SatchelError):
    """A request reached a model that is still loading, or failed to load."""


class ImageBuildError(SatchelError):
    """A serving image's Dockerfile, build context or build failed."""


class MissingWheelError(ImageBuildError):
    """A requirement has no wheel for the image's platform and Python version."""

    def __init__(self, message: str, *, package: str) -> None:
        super().__init__(message)
        self.package = package


class DockerUnavailableError(ImageBuildError):
    """No Docker engine answers at DOCKER_HOST (or the default socket)."""


class OutputError(SatchelError, ValueError):
    """A model's output does not fit what the caller asked for: a Spark ``result_type``,
    one value per input row, or columns an output file can hold."""

    def __init__(self, message: str, *, expected: str | None = None,
                 given: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.given = given


class ProfileError(SatchelError, ValueError):
    """A reference profile that is malformed, or does not match the model's signature."""


class MissingDependencyError(SatchelError, ImportError):
    """An optional dependency of a feature is not installed; the message names the extra."""


class EvaluationError(SatchelError, ValueError):
    """Data or options given to ``satchel evaluate`` cannot be evaluated: a missing target
    column or one of the wrong type, a task that cannot be inferred, labels the model never
    saw, an empty slice."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class PolicyFormatError(SatchelError, ValueError):
    """A threshold file or promotion policy is malformed or names what does not exist
    (an unknown metric, a bound of the wrong type). Not the refusal of a change by a
    policy: that is the registry's own error."""


class RegistryError(SatchelError):
    """A model registry operation failed (base class of the registry's errors)."""


class RegistryInputError(RegistryError, ValueError):
    """A registry call was given a bad name, alias, version, stage, tag or URI.

    ``field`` names the argument; ``limit`` the rule it broke, when there is one.
    """

    def __init__(self, message: str, *, field: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit


class RegistryNotFoundError(RegistryError, LookupError):
    """A registered model, version or alias does not exist.

    ``kind`` is ``"model"``, ``"version"`` or ``"alias"``; ``available`` lists what does
    exist (a few names, versions or aliases) so the message can say what to use instead.
    """

    def __init__(
        self, message: str, *, kind: str, name: str, available: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.available = list(available)


class RegistryConflictError(RegistryError):
    """A registry change contradicts the current state (a name taken, a version that an
    alias still points at, a concurrent change that won)."""


class RegistrySchemaError(RegistryError):
    """The registry database was written by a newer satchel (or is not a registry)."""


class RegistryUnavailableError(RegistryError, ConnectionError):
    """The registry server or database did not answer (after retries)."""


class RegistryAuthError(RegistryError, PermissionError):
    """A registry server refused the caller: ``missing_identity`` is True when no known
    token was given, False when the identity's role may not do what it asked."""

    def __init__(self, message: str, *, missing_identity: bool) -> None:
        super().__init__(message)
        self.missing_identity = missing_identity


class PolicyError(RegistryError):
    """A registry policy hook refused a change (e.g. a protected alias moved without
    approval). ``checks`` carries the hook's own findings."""

    def __init__(self, message: str, *, checks: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.checks = list(checks)


class EnvironmentBuildError(SatchelError):
    """A model's environment could not be built; the message quotes the installer's reason."""

    def __init__(self, message: str, *, requirement: str | None = None) -> None:
        super().__init__(message)
        self.requirement = requirement


class PythonMismatchError(EnvironmentBuildError):
    """The model needs another Python minor version than the running interpreter."""

    def __init__(self, message: str, *, wanted: str, host: str) -> None:
        super().__init__(message)
        self.wanted = wanted
        self.host = host


class WheelhouseMissingError(EnvironmentBuildError):
    """An offline environment build found no wheel for a requirement in the wheelhouse."""
