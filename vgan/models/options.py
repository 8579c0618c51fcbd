"""Model parameters (the `model` group of params.yaml); pydantic only, no torch."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelParams(_Strict):
    name: str = "vgan"
    resolution: Literal[16, 32, 64, 128, 256] = 64
    frames: int = Field(16, ge=4, le=64, multiple_of=4)
    channels: int = Field(3, ge=1)
    z_dim: int = Field(100, ge=1)
    num_classes: int = Field(0, ge=0, description="0 = unconditional")
    width: int = Field(32, ge=4, description="base channel width of G and D")
    spectral_norm: bool = False
