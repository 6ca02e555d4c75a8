"""The RVM module: streaming ``step`` over frames and masked ``reconstruct``."""

from __future__ import annotations

import torch
from torch import nn

from rvm_ros.model.center import FeatureCenter
from rvm_ros.model.config import RVMConfig
from rvm_ros.model.core import GatedCore
from rvm_ros.model.decoder import NUM_DELTAS, Decoder
from rvm_ros.model.encoder import Encoder
from rvm_ros.model.layers import is_tracing


def _frames_to_float(frames: torch.Tensor, dtype: torch.dtype, where: str) -> torch.Tensor:
    """uint8 -> x / 255 in ``dtype``; floating frames are taken as already in [0, 1]."""
    if frames.dtype == torch.uint8:
        return frames.to(dtype) / 255.0
    if frames.is_floating_point():
        return frames.to(dtype)
    raise TypeError(f"{where}: frames must be uint8 or floating point, got {frames.dtype}")


class RVM(nn.Module):
    """Recurrent Video Masked Autoencoder: ViT encoder + gated transformer core (+ decoder).

    Args:
        config: Architecture sizes.
        with_decoder: Build the masked-reconstruction decoder (not needed for streaming).
        model_id: Identifier of the weights (``<variant>-<sha12>`` or ``<variant>-random<seed>``).
    """

    def __init__(
        self, config: RVMConfig, with_decoder: bool = True, model_id: str | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.model_id = model_id if model_id is not None else f"{config.variant}-untrained"
        self.encoder = Encoder(config)
        self.core = GatedCore(config)
        self.decoder: Decoder | None = Decoder(config) if with_decoder else None
        grid = config.center_grid
        self.feature_center: FeatureCenter | None = (
            None if grid is None else FeatureCenter(config.dim, grid)
        )

    def _param_ref(self) -> torch.Tensor:
        return self.encoder.cls_token

    def init_state(
        self,
        batch: int,
        height: int,
        width: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """The zero state for ``batch`` streams of ``height x width`` frames.

        Returns:
            Zeros ``[B, 1+h*w, D]`` on the model's device and dtype unless given.
        """
        if batch <= 0:
            raise ValueError(f"init_state: batch must be positive, got {batch}")
        n = self.config.num_tokens(height, width)
        ref = self._param_ref()
        return torch.zeros(
            batch,
            n,
            self.config.dim,
            device=ref.device if device is None else device,
            dtype=ref.dtype if dtype is None else dtype,
        )

    def _check_frames(self, frames: torch.Tensor, where: str) -> tuple[int, int, int]:
        if frames.dim() != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"{where}: frames must be [B, H, W, 3] RGB, got shape {tuple(frames.shape)}"
            )
        b, height, width, _ = frames.shape
        try:
            self.config.grid(int(height), int(width))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return int(b), int(height), int(width)

    def step(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode one frame per stream and advance the recurrent state.

        Args:
            frames: RGB ``[B, H, W, 3]``, uint8 or float in [0, 1]; H, W divisible by 16.
            state: ``[B, 1+h*w, D]`` from :meth:`init_state` or a previous step.

        Returns:
            ``(features, new_state)``, both ``[B, 1+h*w, D]`` (token 0 = CLS, the rest the
            row-major patch grid); the features are the new state, minus the feature
            centre when the model has one (``config.center_grid``).
        """
        if not is_tracing():
            # Validation on concrete shapes only; a traced / exported graph has fixed shapes.
            b, height, width = self._check_frames(frames, "RVM.step")
            n = self.config.num_tokens(height, width)
            expected = (b, n, self.config.dim)
            if tuple(state.shape) != expected:
                raise ValueError(
                    f"RVM.step: state shape {tuple(state.shape)} does not match frames "
                    f"{b}x{height}x{width} (expected {expected})"
                )
        dtype = self._param_ref().dtype
        x = _frames_to_float(frames, dtype, "RVM.step")  # [B, H, W, 3]
        encoded = self.encoder(x)  # [B, N, D]
        new_state = self.core(encoded, state.to(dtype))  # [B, N, D]
        return self.features(new_state, x.shape[1], x.shape[2]), new_state

    def features(self, state: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The published features of a state ``[B, 1+h*w, D]`` of ``height x width`` frames:
        the state minus the feature centre, or the state itself without one."""
        if self.feature_center is None:
            return state
        p = self.config.patch_size
        centre: torch.Tensor = self.feature_center(height // p, width // p)  # [N, D]
        return state - centre.to(state.dtype)  # [B, N, D]

    def forward(
        self, frames: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`step` (so the module traces / exports as one step)."""
        return self.step(frames, state)

    def reconstruct(
        self,
        source: torch.Tensor,
        target: torch.Tensor,
        deltas: torch.Tensor | None,
        visible_indices: torch.Tensor,
    ) -> torch.Tensor:
        """Masked reconstruction of target frames from a source clip.

        Args:
            source: Source clip ``[B, K, H, W, 3]`` (uint8 or float in [0, 1]).
            target: Target frames ``[B, T, H, W, 3]``.
            deltas: Frame offset of each target ``[B, T]`` in ``[0, 64)``, or None.
            visible_indices: Row-major patch indices left visible ``[B, T, V]``.

        Returns:
            Reconstructed pixels ``[B, T, H, W, 3]`` (float, model dtype).
        """
        if self.decoder is None:
            raise RuntimeError(
                "RVM.reconstruct: this model has no decoder (the checkpoint holds only "
                "the encoder and core)"
            )
        b, t, h, w = self._check_clips(source, target)
        vis = self._check_visible(visible_indices, b, t, h, w)  # [B, T, V] int64
        _check_deltas(deltas, b, t)

        state = self.init_state(b, int(source.shape[2]), int(source.shape[3]))
        outputs = []
        for i in range(int(source.shape[1])):
            _, state = self.step(source[:, i], state)
            outputs.append(state)  # the decoder reads the state, not the centred features
        src = torch.cat(outputs, dim=1)  # [B, K*N, D]
        kv = self.decoder.embed_source(src)  # [B, K*N, Dd]

        dtype = self._param_ref().dtype
        recon = []
        for ti in range(t):
            x = _frames_to_float(target[:, ti], dtype, "RVM.reconstruct")  # [B, H, W, 3]
            tokens = self.encoder.tokens(x)  # [B, hw, D]
            index = vis[:, ti].unsqueeze(-1).expand(-1, -1, tokens.shape[-1])  # [B, V, D]
            kept = torch.gather(tokens, 1, index)  # [B, V, D]
            encoded = self.encoder.encode(kept)  # [B, 1+V, D]
            delta = None if deltas is None else deltas[:, ti]
            recon.append(self.decoder(kv, encoded, vis[:, ti], delta, (h, w)))
        return torch.stack(recon, dim=1)  # [B, T, H, W, 3]

    def _check_clips(self, source: torch.Tensor, target: torch.Tensor) -> tuple[int, int, int, int]:
        """``(B, T, grid h, grid w)`` of a source ``[B, K, H, W, 3]`` and target
        ``[B, T, H, W, 3]`` clip that :meth:`reconstruct` accepts."""
        if source.dim() != 5 or target.dim() != 5:
            raise ValueError(
                "RVM.reconstruct: source and target must be [B, T, H, W, 3], got "
                f"{tuple(source.shape)} and {tuple(target.shape)}"
            )
        b, k = int(source.shape[0]), int(source.shape[1])
        t = int(target.shape[1])
        if k == 0 or t == 0:
            raise ValueError("RVM.reconstruct: source and target need at least one frame")
        if int(target.shape[0]) != b:
            raise ValueError(
                f"RVM.reconstruct: source batch {b} != target batch {int(target.shape[0])}"
            )
        _, height, width = self._check_frames(target[:, 0], "RVM.reconstruct target")
        self._check_frames(source[:, 0], "RVM.reconstruct source")
        h, w = self.config.grid(height, width)
        return b, t, h, w

    @staticmethod
    def _check_visible(
        visible_indices: torch.Tensor, b: int, t: int, h: int, w: int
    ) -> torch.Tensor:
        """``visible_indices`` ``[B, T, V]`` as int64, once each row holds distinct patch
        indices of the ``h x w`` grid."""
        if visible_indices.dim() != 3 or tuple(visible_indices.shape[:2]) != (b, t):
            raise ValueError(
                f"RVM.reconstruct: visible_indices must be [B={b}, T={t}, V], got "
                f"{tuple(visible_indices.shape)}"
            )
        vis = visible_indices.long()  # [B, T, V]
        if vis.numel() and (int(vis.min()) < 0 or int(vis.max()) >= h * w):
            raise ValueError(
                f"RVM.reconstruct: visible_indices must lie in [0, {h * w}) for a {h}x{w} grid"
            )
        for bi in range(b):
            for ti in range(t):
                if torch.unique(vis[bi, ti]).numel() != vis.shape[2]:
                    raise ValueError(
                        f"RVM.reconstruct: visible_indices[{bi}, {ti}] has repeated indices"
                    )
        return vis


def _check_deltas(deltas: torch.Tensor | None, b: int, t: int) -> None:
    """Frame offsets ``[B, T]`` in ``[0, NUM_DELTAS)``, or None."""
    if deltas is None:
        return
    if tuple(deltas.shape) != (b, t):
        raise ValueError(
            f"RVM.reconstruct: deltas must be [B={b}, T={t}], got {tuple(deltas.shape)}"
        )
    if deltas.numel() and (int(deltas.min()) < 0 or int(deltas.max()) >= NUM_DELTAS):
        raise ValueError(f"RVM.reconstruct: deltas must lie in [0, {NUM_DELTAS})")
