"""Hugging Face backbones: names and loading, tokenizers, LoRA and quantization, sharding, dense export and the tiny
offline model. Nothing here knows about reward models, policies or data."""
