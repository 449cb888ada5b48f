"""Amp + cabinet: a TCN (the nonlinear amp) followed by a long learned FIR (the cabinet)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from deepfx.models.base import HyperparameterError
from deepfx.models.fir import FIR
from deepfx.models.tcn import TCN

__all__ = ["TCNWithFIR"]

#: The TCN's own defaults, so both architectures default to the same network.
_TCN = {name: p.default for name, p in inspect.signature(TCN.__init__).parameters.items()}


class TCNWithFIR(nn.Module):
    """(B, 1, T) → (B, 1, T): a :class:`~deepfx.models.tcn.TCN`, then a :class:`FIR`.

    The TCN learns the amplifier (gain, saturation, tone filters); the FIR (``fir_ms`` of
    impulse response, starting as the identity) learns the speaker cabinet, whose response
    is too long for the TCN's receptive field. Output t depends on inputs
    t - receptive_field + 1 … t with receptive_field = TCN's + FIR's - 1 (samples).
    """

    def __init__(
        self,
        *,
        channels: int = _TCN["channels"],
        kernel_size: int = _TCN["kernel_size"],
        dilations: Sequence[int] = _TCN["dilations"],
        stacks: int = _TCN["stacks"],
        activation: Literal["gated", "tanh"] = _TCN["activation"],
        fir_ms: float = 50.0,
        sample_rate: int,
    ) -> None:
        super().__init__()
        self.tcn = TCN(
            channels=channels,
            kernel_size=kernel_size,
            dilations=dilations,
            stacks=stacks,
            activation=activation,
        )
        try:
            self.fir = FIR(length_ms=fir_ms, sample_rate=sample_rate)
        except HyperparameterError as exc:
            raise HyperparameterError("fir_ms", exc.message) from None
        self.receptive_field = self.tcn.receptive_field + self.fir.receptive_field - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fir(self.tcn(x))

    def onnx_module(self) -> nn.Module:
        """The TCN, then the FIR as a direct convolution (:meth:`FIR.onnx_module`): a network
        ONNX expresses, equal to :meth:`forward` up to float32 round-off."""
        return nn.Sequential(self.tcn, self.fir.onnx_module())
