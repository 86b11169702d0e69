"""The transformers flavor against real transformers, with tiny models built here.

Every model is made from a config and a local vocabulary; nothing is downloaded
(HF_HUB_OFFLINE=1 makes any attempt fail).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"

import satchel  # noqa: E402
from satchel.errors import (  # noqa: E402
    FlavorLoadError,
    LibraryVersionWarning,
    ModelFormatError,
    PredictionError,
    SignatureError,
)
from satchel.flavors import transformers as hf_flavor  # noqa: E402
from satchel.schema import ColSpec, DataType, Schema  # noqa: E402
from satchel.testing import check_flavor  # noqa: E402

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "great"]
WORDS += ["awful", "the", "a", "is", "not", "film", "fun", "plot", "actors"]
TEXTS = ["good movie", "the plot is not fun", "great actors"]


def _bert_config(**kw: Any) -> Any:
    return transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        **kw,
    )


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("vocab")
    (d / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(d / "vocab.txt"))


def _pipe(task: str, model: Any, tokenizer: Any) -> Any:
    return transformers.pipeline(task, model=model.eval(), tokenizer=tokenizer)


@pytest.fixture(scope="module")
def classifier(vocab: Any) -> Any:
    torch.manual_seed(0)
    cfg = _bert_config(num_labels=2, id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1})
    return _pipe("text-classification", transformers.BertForSequenceClassification(cfg), vocab)


@pytest.fixture(scope="module")
def fill_mask(vocab: Any) -> Any:
    torch.manual_seed(0)
    return _pipe("fill-mask", transformers.BertForMaskedLM(_bert_config()), vocab)


@pytest.fixture(scope="module")
def generator() -> Any:
    """A tiny GPT-2 with a word-level tokenizer built from the same vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[SEP]"
    )
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(WORDS), n_positions=64, n_embd=16, n_layer=1, n_head=2,
        eos_token_id=3, pad_token_id=0, bos_token_id=2,
    )  # fmt: skip
    return _pipe("text-generation", transformers.GPT2LMHeadModel(cfg), fast)


GEN_CONFIG = {"max_new_tokens": 4, "do_sample": False}


def test_conformance_text_classification(classifier: Any) -> None:
    passed = check_flavor(
        "transformers",
        classifier,
        TEXTS,
        native_predict=lambda p, s: pd.DataFrame(p(s)),
        load_options={"allow_code": False},  # safetensors + JSON: no code on load
        native_type="TextClassificationPipeline",
    )
    assert "predict_matches_native" in passed and "tamper_detected" in passed


def test_conformance_text_generation(generator: Any) -> None:
    passed = check_flavor(
        "transformers",
        generator,
        TEXTS,
        native_predict=lambda p, s: [o[0]["generated_text"].strip() for o in p(s, **GEN_CONFIG)],
        save_options={"model_config": GEN_CONFIG},
    )
    assert "predict_matches_native" in passed


def test_manifest_matches_mlflow_transformers(classifier: Any, tmp_path: Path) -> None:
    satchel.save_model(classifier, tmp_path / "m")  # picked from the type
    doc = yaml.safe_load((tmp_path / "m/MLmodel").read_text())
    assert doc["flavors"]["transformers"] == {
        "task": "text-classification",
        "instance_type": "TextClassificationPipeline",
        "pipeline_model_type": "BertForSequenceClassification",
        "source_model_name": "",
        "torch_dtype": "torch.float32",
        "transformers_version": transformers.__version__,
        "code": None,
        "model_binary": "model",
        "tokenizer_type": type(classifier.tokenizer).__name__,
        "components": ["tokenizer"],
    }
    assert doc["flavors"]["python_function"]["loader_module"] == "mlflow.transformers"
    assert (tmp_path / "m/model/model.safetensors").is_file()
    assert (tmp_path / "m/components/tokenizer/tokenizer.json").is_file()
    assert not list((tmp_path / "m").rglob("*.bin")) and not list((tmp_path / "m").rglob("*.pkl"))
    sig = satchel.load_model(tmp_path / "m").signature
    assert sig is not None and sig.inputs == Schema([ColSpec(DataType.string)])
    assert sig.outputs == Schema(
        [ColSpec(DataType.string, "label"), ColSpec(DataType.double, "score")]
    )


def test_input_shapes_as_mlflow(classifier: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    m = satchel.load_model(tmp_path / "m")
    want = pd.DataFrame(classifier(TEXTS))
    for given in (TEXTS, np.array(TEXTS), pd.DataFrame({"text": TEXTS}), pd.Series(TEXTS)):
        got = m.predict(given)
        assert list(got.columns) == ["label", "score"]
        np.testing.assert_allclose(got["score"], want["score"], rtol=1e-6)
    one = m.predict("good movie")
    assert len(one) == 1 and one["label"][0] == want["label"][0]
    pairs = m._predictor.predict([{"text": "good movie", "text_pair": "great actors"}])
    assert list(pairs.columns) == ["label", "score"]
    with pytest.raises(SignatureError, match="text_pair"):
        m._predictor.predict([{"text": "a", "question": "b"}])


def test_generation_options_and_params(generator: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(
        generator, tmp_path / "m", model_config=GEN_CONFIG, input_example=["good movie"]
    )
    doc = yaml.safe_load((tmp_path / "m/MLmodel").read_text())
    assert doc["flavors"]["python_function"]["config"] == GEN_CONFIG
    m = satchel.load_model(tmp_path / "m")
    out = m.predict(TEXTS)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert all(o.startswith(t) for o, t in zip(out, TEXTS))
    # a load-time model_config overrides the saved one; one string still gives a list
    short = satchel.load_model(tmp_path / "m", model_config={"max_new_tokens": 1})
    single = short.predict(["good movie"])
    native = generator(["good movie"], max_new_tokens=1, do_sample=False)
    assert single.shape == (1,) and single[0] == native[0][0]["generated_text"].strip()
    assert single[0] != out[0]


def test_fill_mask_returns_the_top_token(fill_mask: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(fill_mask, tmp_path / "m", input_example=["good [MASK]"])
    m = satchel.load_model(tmp_path / "m")
    texts = ["good [MASK]", "the [MASK] is fun"]
    want = [r[0]["token_str"].strip() for r in fill_mask(texts)]
    assert list(m.predict(texts)) == want


def test_feature_extraction_and_token_classification(vocab: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    fe = _pipe("feature-extraction", transformers.BertModel(_bert_config()), vocab)
    hf_flavor.save_model(fe, tmp_path / "fe")
    m = satchel.load_model(tmp_path / "fe")
    assert not m.row_independent  # MLflow returns the first input's embedding only
    np.testing.assert_allclose(m.predict(["good movie"]), np.array(fe(["good movie"])[0][0]))
    cfg = _bert_config(num_labels=2, id2label={0: "O", 1: "ENT"}, label2id={"O": 0, "ENT": 1})
    tc = _pipe("token-classification", transformers.BertForTokenClassification(cfg), vocab)
    hf_flavor.save_model(tc, tmp_path / "tc")
    got = satchel.load_model(tmp_path / "tc").predict(["good movie", "bad film"])
    want = [",".join(e["entity"] for e in r) for r in tc(["good movie", "bad film"])]
    assert list(got) == want


def test_import_satchel_and_can_save_do_not_import_transformers() -> None:
    code = (
        "import sys\n"
        "from satchel import plugins\n"
        "assert not plugins.get('transformers').can_save(object())\n"
        "print('transformers' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_missing_transformers_names_the_extra(classifier: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import satchel\n"
        "try:\n"
        f"    satchel.load_model({str(tmp_path / 'm')!r})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingLibraryError")
    assert "pip install 'satchel[transformers]'" in out.stdout


def _edit(path: Path, **changes: Any) -> None:
    mlmodel = path / "MLmodel"
    doc = yaml.safe_load(mlmodel.read_text())
    doc["flavors"]["transformers"].update(changes)
    mlmodel.write_text(yaml.safe_dump(doc))


def test_newer_transformers_warns_naming_both(classifier: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    _edit(tmp_path / "m", transformers_version="99.0.0")
    with pytest.warns(LibraryVersionWarning) as rec:
        satchel.load_model(tmp_path / "m")
    msg = str(rec[0].message)
    assert "99.0.0" in msg and transformers.__version__ in msg


def test_corrupt_weights_are_a_one_line_error(classifier: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    (tmp_path / "m/model/config.json").write_text("{not json")
    with pytest.raises(ModelFormatError) as info:
        satchel.load_model(tmp_path / "m", verify=False)
    assert "model/" in str(info.value) and "\n" not in str(info.value)


def test_hostile_manifest_values(classifier: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    _edit(tmp_path / "m", torch_dtype="os.system")
    with pytest.raises(ModelFormatError, match="torch dtype"):
        satchel.load_model(tmp_path / "m")
    _edit(tmp_path / "m", torch_dtype="torch.float32", components=["../../etc"])
    with pytest.raises(ModelFormatError, match="component"):
        satchel.load_model(tmp_path / "m")
    _edit(tmp_path / "m", components=["tokenizer"], task="image-to-text")
    with pytest.raises(FlavorLoadError, match="image-to-text"):
        satchel.load_model(tmp_path / "m")
    _edit(tmp_path / "m", task="text-classification", model_binary="../elsewhere")
    with pytest.raises(ModelFormatError, match="outside"):
        satchel.load_model(tmp_path / "m")


def test_model_saved_without_weights_is_refused(classifier: Any, tmp_path: Path) -> None:
    """MLflow's save_pretrained=False keeps only a Hub reference: satchel never downloads."""
    hf_flavor.save_model(classifier, tmp_path / "m")
    _edit(tmp_path / "m", model_binary="absent")
    with pytest.raises(ModelFormatError, match="Hugging Face Hub"):
        satchel.load_model(tmp_path / "m", verify=False)


def _no_iterator(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the pipeline's list (DataLoader) path was taken")


@pytest.mark.parametrize("config", [None, {"top_k": 2}, {"function_to_apply": "sigmoid"}])
def test_one_text_takes_the_single_input_path_with_the_list_answer(
    classifier: Any, tmp_path: Path, config: dict[str, Any] | None, monkeypatch: Any
) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    options = {"model_config": config} if config else {}
    m = satchel.load_model(tmp_path / "m", **options)
    pipe = m._predictor.pipeline
    # what the pipeline gives for a list of one text, as MLflow's pyfunc calls it
    want = pd.DataFrame(pipe(["good movie"], **(config or {})))
    by_frame = m.predict(pd.DataFrame({"text": ["good movie"]}))
    # the list answer, through the pipeline's single-input path only
    monkeypatch.setattr(pipe, "get_iterator", _no_iterator)
    for got in (m.predict(["good movie"]), m.predict("good movie"), by_frame):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    with pytest.raises(PredictionError, match="list .DataLoader. path"):
        m.predict(TEXTS)  # two or more texts still go through the list path
    monkeypatch.undo()
    pd.testing.assert_frame_equal(
        m.predict(TEXTS), pd.DataFrame(pipe(TEXTS, **(config or {}))), check_exact=True
    )


def test_hostile_one_row_inputs_give_what_they_gave(classifier: Any, tmp_path: Path) -> None:
    hf_flavor.save_model(classifier, tmp_path / "m")
    m = satchel.load_model(tmp_path / "m")
    # no rows, no answers (the pipeline alone fails on an empty list with an IndexError)
    for empty in (pd.DataFrame({"text": pd.Series([], dtype=str)}), []):
        got = m.predict(empty)
        assert list(got.columns) == ["label", "score"] and len(got) == 0
    with pytest.raises(SignatureError, match="null"):
        m.predict([np.nan])
    with pytest.raises(SignatureError, match="expected string, given int64"):
        m.predict([1])
    # the predictor on its own: a non-string or NaN never reaches the pipeline
    for bad in ([np.nan], [1], [None]):
        with pytest.raises(SignatureError, match="takes a string"):
            m._predictor.predict(bad)
    # a trailing NUL is kept whole on both paths (numpy's str_ would drop it)
    pd.testing.assert_frame_equal(
        m.predict(["good\x00"]), m.predict(pd.DataFrame({"text": ["good\x00"]})),
        check_exact=True,
    )
    accented = ["goodé movie"]
    pd.testing.assert_frame_equal(
        m.predict(accented), pd.DataFrame(classifier(accented)), check_exact=True
    )
