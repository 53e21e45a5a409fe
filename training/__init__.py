"""Dataset building, two-stage QLoRA fine-tuning and evaluation of the VLM engine."""
