"""transformers pipelines both ways with real MLflow 3.17 (side venv, HF_HUB_OFFLINE=1).

Tiny pipelines are built here from configs and a local vocabulary and handed to the MLflow
side with ``save_pretrained``. MLflow -> satchel: ``mlflow.transformers.save_model`` writes
them (text generation with an inference config); satchel loads each without mlflow and
predicts what MLflow's pyfunc predicts. satchel -> MLflow: MLflow's pyfunc loads
satchel's directories and predicts the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import satchel  # noqa: E402
from satchel.flavors import transformers as hf_flavor  # noqa: E402

pytestmark = pytest.mark.interop
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "great"]
WORDS += ["awful", "the", "a", "is", "not", "film", "fun", "plot", "actors"]
GEN_CONFIG = {"max_new_tokens": 4, "do_sample": False}
INPUTS = {
    "text-classification": ["good movie", "the plot is not fun", "great actors"],
    "text-generation": ["good movie", "the plot is"],
    "fill-mask": ["good [MASK]", "the [MASK] is fun"],
}
NAMES = {"text-classification": "tc", "text-generation": "gen", "fill-mask": "fm"}

COMMON = """
import os
os.environ["HF_HUB_OFFLINE"] = "1"
import json, sys
from pathlib import Path
import numpy as np, pandas as pd

result_path, work = sys.argv[1], Path(sys.argv[2])
INPUTS = json.loads((work / "inputs.json").read_text())
NAMES = json.loads((work / "names.json").read_text())
GEN = json.loads((work / "gen.json").read_text())

def enc(p):
    if isinstance(p, pd.DataFrame):
        return {"kind": "frame", "columns": [str(c) for c in p.columns],
                "value": p.to_numpy().tolist()}
    return {"kind": "list", "value": np.asarray(p).tolist()}

def done(result):
    Path(result_path).write_text(json.dumps(result))
"""

MLFLOW_SAVES = (
    COMMON
    + """
import transformers, mlflow.transformers, mlflow.pyfunc
reqs = json.loads(sys.argv[3])
out = {}
for task, name in NAMES.items():
    pipe = transformers.pipeline(task, model=str(work / "pipes" / name))
    path = work / "from_mlflow" / name
    kw = {"model_config": GEN} if task == "text-generation" else {}
    mlflow.transformers.save_model(pipe, str(path), pip_requirements=reqs, **kw)
    out[task] = {"path": str(path),
                 "pred": enc(mlflow.pyfunc.load_model(str(path)).predict(INPUTS[task]))}
done(out)
"""
)

MLFLOW_LOADS = (
    COMMON
    + """
import mlflow.pyfunc
out = {}
for task, name in NAMES.items():
    model = mlflow.pyfunc.load_model(str(work / "from_satchel" / name))
    out[task] = enc(model.predict(INPUTS[task]))
done(out)
"""
)


def enc(p: Any) -> dict[str, Any]:
    if isinstance(p, pd.DataFrame):
        return {
            "kind": "frame",
            "columns": [str(c) for c in p.columns],
            "value": p.to_numpy().tolist(),
        }
    return {"kind": "list", "value": np.asarray(p).tolist()}


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["kind"] == want["kind"]
    if got["kind"] == "frame":
        assert got["columns"] == want["columns"]
        g, w = pd.DataFrame(got["value"]), pd.DataFrame(want["value"])
        assert g[0].tolist() == w[0].tolist()  # labels
        np.testing.assert_allclose(g[1].astype(float), w[1].astype(float), rtol=1e-5)
    else:
        assert got["value"] == want["value"]


def _pipelines(tmp: Path) -> dict[str, Any]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    (tmp / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    bert_tok = transformers.BertTokenizerFast(vocab_file=str(tmp / "vocab.txt"))

    def bert(**kw: Any) -> Any:
        return transformers.BertConfig(
            vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64, **kw,
        )  # fmt: skip

    torch.manual_seed(0)
    labels = {"id2label": {0: "NEG", 1: "POS"}, "label2id": {"NEG": 0, "POS": 1}}
    tc = transformers.BertForSequenceClassification(bert(num_labels=2, **labels)).eval()
    fm = transformers.BertForMaskedLM(bert()).eval()
    wl = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    gen_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=wl, unk_token="[UNK]", pad_token="[PAD]", eos_token="[SEP]"
    )
    gpt = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=len(WORDS),
            n_positions=64,
            n_embd=16,
            n_layer=1,
            n_head=2,
            eos_token_id=3,
            pad_token_id=0,
            bos_token_id=2,
        )  # fmt: skip
    ).eval()
    return {
        "text-classification": transformers.pipeline(
            "text-classification", model=tc, tokenizer=bert_tok
        ),
        "text-generation": transformers.pipeline("text-generation", model=gpt, tokenizer=gen_tok),
        "fill-mask": transformers.pipeline("fill-mask", model=fm, tokenizer=bert_tok),
    }


@pytest.fixture(scope="module")
def pipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _pipelines(tmp_path_factory.mktemp("hf-vocab"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, pipes: dict[str, Any]) -> Path:
    d = tmp_path_factory.mktemp("interop-hf")
    for task, pipe in pipes.items():
        pipe.save_pretrained(str(d / "pipes" / NAMES[task]))
    (d / "inputs.json").write_text(json.dumps(INPUTS))
    (d / "names.json").write_text(json.dumps(NAMES))
    (d / "gen.json").write_text(json.dumps(GEN_CONFIG))
    return d


@pytest.fixture(scope="module")
def from_mlflow(run_mlflow: Any, work: Path) -> dict[str, Any]:
    from satchel.env import pin

    reqs = [pin("transformers"), pin("torch")]
    return dict(run_mlflow(MLFLOW_SAVES, str(work), json.dumps(reqs)))


@pytest.mark.parametrize("task", list(NAMES))
def test_satchel_loads_what_mlflow_saved(from_mlflow: dict[str, Any], task: str) -> None:
    model = satchel.load_model(from_mlflow[task]["path"], allow_code=False)
    assert model.flavor_name == "transformers"
    _same(enc(model.predict(INPUTS[task])), from_mlflow[task]["pred"])


def test_mlflow_loads_what_satchel_saved(
    run_mlflow: Any, work: Path, pipes: dict[str, Any]
) -> None:
    base = work / "from_satchel"
    for task, pipe in pipes.items():
        options = {"model_config": GEN_CONFIG} if task == "text-generation" else {}
        hf_flavor.save_model(pipe, base / NAMES[task], **options)
    result = run_mlflow(MLFLOW_LOADS, str(work))
    for task in NAMES:
        ours = enc(satchel.load_model(base / NAMES[task]).predict(INPUTS[task]))
        _same(ours, result[task])
