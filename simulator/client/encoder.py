"""The client's sentence encoder (``coder.sentence``, shared with the MITI utterance coder)."""

from simulator.coder.sentence import (
    CACHE_SIZE,
    MAX_TOKENS,
    MODEL_DIR,
    MODEL_FILE,
    TOKENIZER_FILE,
    SentenceEncoder,
    sentence_encoder,
)

__all__ = ["CACHE_SIZE", "MAX_TOKENS", "MODEL_DIR", "MODEL_FILE", "TOKENIZER_FILE",
           "SentenceEncoder", "sentence_encoder"]
