"""The spine detector network: a small RT-DETR built from a config in code (no downloads)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

#: Spine types, index = class label (the real annotated data's five classes, M S B T F).
SPINE_TYPES: tuple[str, ...] = ("mushroom", "stubby", "branched", "thin", "filopodium")

#: Map of the simulator's type names (``synapflow_assets.synthetic.SPINE_TYPES``) to labels.
SIMULATOR_TYPE_TO_LABEL: dict[str, int] = {"mushroom": 0, "stubby": 1, "thin": 3, "filopodium": 4}


@dataclass(frozen=True)
class DetectorSpec:
    """Architecture of the detector; everything needed to rebuild it (saved as ``config.json``).

    Attributes
    ----------
    types : list of str
        Class names, index = label.
    backbone_hidden_sizes : list of int
        Channels of the four ResNet stages (strides 4, 8, 16, 32).
    backbone_depths : list of int
        Residual blocks per stage.
    backbone_embedding_size : int
        Channels of the stem.
    feature_stages : list of str
        Backbone stages fed to the encoder ("stage2".."stage4" = strides 8, 16, 32).
    hidden_dim : int
        Width of the hybrid encoder and the decoder.
    decoder_layers, num_queries, num_denoising : int
        Decoder depth, object queries, denoising queries in training.
    ffn_dim : int
        Feed-forward width in encoder and decoder.
    heads : int
        Attention heads.
    """

    types: list[str] = field(default_factory=lambda: list(SPINE_TYPES))
    backbone_hidden_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    backbone_depths: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    backbone_embedding_size: int = 32
    feature_stages: list[str] = field(default_factory=lambda: ["stage2", "stage3", "stage4"])
    hidden_dim: int = 128
    decoder_layers: int = 3
    num_queries: int = 100
    num_denoising: int = 50
    ffn_dim: int = 512
    heads: int = 8

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DetectorSpec:
        """Inverse of :meth:`to_dict`; unknown keys are rejected.

        Raises
        ------
        ValueError
            On unknown keys.
        """
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown detector config keys: {sorted(unknown)}")
        return cls(**data)

    @property
    def strides(self) -> list[int]:
        """Feature strides of the stages fed to the encoder."""
        return [2 ** (int(name.removeprefix("stage")) + 1) for name in self.feature_stages]


def tiny_spec() -> DetectorSpec:
    """A very small detector for tests (trains a few steps in seconds)."""
    return DetectorSpec(
        backbone_hidden_sizes=[8, 16, 32, 64],
        backbone_embedding_size=8,
        hidden_dim=32,
        decoder_layers=1,
        num_queries=30,
        num_denoising=10,
        ffn_dim=64,
        heads=4,
    )


def _unchecked(**options: Any) -> dict[str, Any]:
    """Options that the configs take through `**kwargs` (transformers' signatures do not name them)."""
    return options


def build_config(spec: DetectorSpec):
    """The ``transformers.RTDetrConfig`` of a spec (ResNet backbone from config, no pretrained weights).

    Parameters
    ----------
    spec : DetectorSpec

    Returns
    -------
    transformers.RTDetrConfig
    """
    from transformers import RTDetrConfig, RTDetrResNetConfig

    stage_index = [int(name.removeprefix("stage")) - 1 for name in spec.feature_stages]
    backbone = RTDetrResNetConfig(
        num_channels=3,
        embedding_size=spec.backbone_embedding_size,
        hidden_sizes=list(spec.backbone_hidden_sizes),
        depths=list(spec.backbone_depths),
        layer_type="basic",
        hidden_act="relu",
        downsample_in_first_stage=False,
        **_unchecked(out_features=list(spec.feature_stages)),
    )
    in_channels = [spec.backbone_hidden_sizes[i] for i in stage_index]
    labels = {i: name for i, name in enumerate(spec.types)}
    return RTDetrConfig(
        backbone_config=backbone,
        **_unchecked(use_pretrained_backbone=False, use_timm_backbone=False),
        freeze_backbone_batch_norms=False,
        encoder_hidden_dim=spec.hidden_dim,
        encoder_in_channels=in_channels,
        feat_strides=spec.strides,
        encoder_layers=1,
        encoder_ffn_dim=spec.ffn_dim,
        encoder_attention_heads=spec.heads,
        encode_proj_layers=[len(stage_index) - 1],
        d_model=spec.hidden_dim,
        num_queries=spec.num_queries,
        decoder_in_channels=[spec.hidden_dim] * len(stage_index),
        decoder_ffn_dim=spec.ffn_dim,
        num_feature_levels=len(stage_index),
        decoder_layers=spec.decoder_layers,
        decoder_attention_heads=spec.heads,
        num_denoising=spec.num_denoising,
        learn_initial_query=False,
        anchor_image_size=None,
        with_box_refine=True,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )


def build_model(spec: DetectorSpec, seed: int | None = 0) -> torch.nn.Module:
    """A freshly initialised ``RTDetrForObjectDetection`` (random weights, nothing downloaded).

    Parameters
    ----------
    spec : DetectorSpec
    seed : int or None
        Seed of the weight initialisation.

    Returns
    -------
    transformers.RTDetrForObjectDetection
    """
    from transformers import RTDetrForObjectDetection

    if seed is not None:
        torch.manual_seed(seed)
    return RTDetrForObjectDetection(build_config(spec))


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
