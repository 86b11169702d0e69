"""The flavor plugin protocol: what a library integration implements.

A flavor is found by name through the ``satchel.flavors`` entry-point group (see
``registry``). Built-in flavors use the same path as third-party ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from satchel.schema import Schema, Signature


@dataclass(frozen=True)
class FlavorConfig:
    """What ``Flavor.save`` returns: the manifest entries it needs written.

    Attributes:
        section: the flavor's own MLmodel section (e.g. ``pickled_model``, ``sklearn_version``).
        pyfunc: extra ``python_function`` keys (``model_path``, ``data``, ``predict_fn`` ...).
        signature: a signature the flavor knows from the model itself (an ONNX graph),
            used when the caller gives none.
        requirements: packages needed beyond ``default_requirements()``.
    """

    section: dict[str, Any]
    pyfunc: dict[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    requirements: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadConfig:
    """What a flavor's loaders receive besides the model directory."""

    section: dict[str, Any]
    pyfunc: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    # the model's input schema: ``Model.predict`` fits every input to it before the
    # predictor sees it, so a predictor may skip checks this schema already makes
    inputs: Schema | None = None


@runtime_checkable
class Predictor(Protocol):
    """The one thing every serving target calls."""

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict on input already fitted to the signature."""
        ...

    # Optional: ``predict_texts(texts: list[str], params) -> output`` for a model whose
    # signature is one string column: ``Model.predict`` hands it a list of texts given as
    # such (no frame built). It must return what ``predict`` returns on the one-column
    # frame of those texts.


class Flavor(Protocol):
    """A library integration. Optional attributes are read with defaults:

    - ``loader_module`` (str): written as ``python_function.loader_module``;
      default ``satchel.flavors.<name>``.
    - ``row_independent`` (bool): predictions of one row do not depend on the others,
      so requests may be batched together; default True. A predictor may override it
      per model. :func:`satchel.testing.check_flavor` requires the flavor or its
      predictor to say it, and when it is True, that the sample predicted in two parts
      gives what it gives whole.
    - ``unsafe_format(config: LoadConfig) -> str | None``: the name of a format that
      runs code when loaded (``"cloudpickle"``, ``"python source"``), or None; default
      None. ``load_model(allow_code=False)`` refuses a model when it returns a name.
    - ``save_options`` (tuple of str): the keywords ``save`` accepts, when its signature
      takes ``**options``; otherwise they are read from ``save``'s signature, and
      ``save_model`` refuses any other keyword.
    - ``generic`` (bool): accepts objects of other libraries too (sklearn takes any
      ``BaseEstimator``), so it is asked after the specific flavors.
    - ``input_example_option`` (str): a ``save`` keyword that ``save_model`` fills with
      the input example's data when the caller does not set it (a tracer needs one).
    - ``libraries`` (tuple of module names): imported before a model's code paths are
      put on ``sys.path``, so a file in ``code/`` never stands in for them; default ().
    - ``fallback`` (bool): only asked ``can_save`` after every other flavor declined.
    """

    name: str

    def can_save(self, obj: Any) -> bool:
        """True if this flavor saves ``obj``. Must not import heavy libraries."""
        ...

    def save(self, obj: Any, path: Path, **options: Any) -> FlavorConfig:
        """Write the model's files into ``path`` and describe them."""
        ...

    def load(self, path: Path, config: LoadConfig) -> Any:
        """Return the native object (what ``Model.unwrap()`` gives)."""
        ...

    def load_predictor(self, path: Path, config: LoadConfig) -> Predictor:
        """Return the object whose ``predict`` serves requests."""
        ...

    def default_requirements(self) -> list[str]:
        """Distribution names the model needs at load time (pinned by satchel)."""
        ...


REQUIRED_MEMBERS = ("name", "can_save", "save", "load", "load_predictor", "default_requirements")
