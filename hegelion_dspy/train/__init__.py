"""Phase 3: train a model on the exported rows (TRL DPO/SFT with a peft LoRA), merged, as a Hugging Face folder,
``model.gguf`` for llama.cpp and a model card. torch, transformers, trl and peft are imported only when training runs.
"""

from .api import TrainedModel, check_packages, train_model
from .bases import CARD_JSON, TrainBase, resolve_base
from .card import ModelCard, read_card
from .data import TrainingData, load_training_data
from .trainer import TrainSettings

__all__ = [
    "CARD_JSON",
    "ModelCard",
    "TrainBase",
    "TrainSettings",
    "TrainedModel",
    "TrainingData",
    "check_packages",
    "load_training_data",
    "read_card",
    "resolve_base",
    "train_model",
]
