"""The VLM engine: SmolVLM reads an ECG page and writes the report.

    engine.py           VlmEngine: the vlm and hybrid engines (torch, transformers)
    loading.py          the model, its processor, an adapter, 4-bit; VlmUnavailable's remedies
    settings.py         VlmSettings and LoadSpec, torch-free: gateway.yaml reads them
    prompt.py           the instruction and the hybrid prompt's measured values
    findings.py         ECG statements in report text, negated and hedged (English, German)
    parse.py            the generated text back into statements, impression and values
    report.py           a generation into a Report
    page_image.py       received pages (DICOM SC, PDF, PNG, JPEG) as the RGB image it reads
    tiny_checkpoint.py  a SmolVLM-shaped random-weight checkpoint built offline

This file imports nothing, so importing the settings does not import torch.
"""
