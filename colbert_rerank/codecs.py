"""Token-embedding codecs: float16, int8 with a per-token scale, ColBERTv2-style residuals.

Every blob starts with a 14-byte header, so a stored value says how to read itself::

    magic "CR" | version u8 | codec u8 | bits u8 | reserved u8 | dim u16 | count u16 | tag u32

``tag`` is the first 4 bytes of the hash of the codebook and the projection (0 when there are
neither), so a blob is never decoded with the wrong codebook or compared with queries reduced
by another projection. Pure functions over numpy arrays; the codebook is fitted
separately (:mod:`colbert_rerank.codebook`).

Bytes per token at ``dim`` dimensions: float16 ``2*dim``; int8 ``dim + 2``; residual
``2 + dim*bits/8`` (a uint16 centroid id plus ``bits`` per dimension).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from colbert_rerank.codebook import Codebook
from colbert_rerank.projection import Projection

__all__ = [
    "HEADER_BYTES",
    "MAX_TOKENS",
    "Codec",
    "CodecError",
    "CodecName",
    "Header",
    "payload_bytes",
    "read_header",
]

CodecName = Literal["float16", "int8", "residual"]
MAGIC = b"CR"
VERSION = 1
_HEADER = struct.Struct("<2sBBBxHHI")
HEADER_BYTES = _HEADER.size
_CODES: dict[str, int] = {"float16": 1, "int8": 2, "residual": 3}
_NAMES = {code: name for name, code in _CODES.items()}
MAX_TOKENS = 65535


class CodecError(ValueError):
    """A blob is truncated, corrupted, or was written with another codec, dim or codebook."""


@dataclass(frozen=True)
class Header:
    codec: CodecName
    bits: int
    dim: int
    count: int
    tag: int


def read_header(blob: bytes) -> Header:
    """Parse and check the header of a stored blob."""
    if len(blob) < HEADER_BYTES:
        raise CodecError(
            f"blob of {len(blob)} bytes is shorter than the {HEADER_BYTES}-byte header"
        )
    magic, version, code, bits, dim, count, tag = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CodecError(f"blob starts with {magic!r}, not {MAGIC!r}: not a colbert_rerank blob")
    if version != VERSION:
        raise CodecError(f"blob format version {version}; this package reads version {VERSION}")
    if code not in _NAMES:
        raise CodecError(f"unknown codec id {code}")
    return Header(_NAMES[code], bits, dim, count, tag)  # type: ignore[arg-type]


def payload_bytes(header: Header) -> int:
    """Expected payload size after the header."""
    if header.codec == "float16":
        return header.count * header.dim * 2
    if header.codec == "int8":
        return header.count * (header.dim + 2)
    return header.count * (2 + header.dim * header.bits // 8)


class Codec:
    """Encodes ``[tokens, dim]`` float32 embeddings into self-describing bytes and back.

    Args:
        name: ``float16``, ``int8`` or ``residual``.
        dim: stored embedding dimension.
        codebook: required for ``residual`` (its ``bits`` and centroids are used).
        projection: reduces the model's embeddings to ``dim`` before they are stored (and
            queries before they are scored): :meth:`encode` then takes model-dim embeddings.

    Example:
        >>> codec = Codec("int8", dim=4)
        >>> blob = codec.encode(np.eye(4, dtype=np.float32))
        >>> codec.decode(blob).shape
        (4, 4)
    """

    def __init__(
        self,
        name: CodecName,
        dim: int,
        codebook: Codebook | None = None,
        projection: Projection | None = None,
    ) -> None:
        if name not in _CODES:
            raise ValueError(f"codec={name!r}: expected float16, int8 or residual.")
        if not isinstance(dim, int) or not 0 < dim < 65536:
            raise ValueError(f"dim={dim!r}: expected an integer in 1..65535.")
        if name == "residual":
            if codebook is None:
                raise ValueError("The residual codec needs a codebook: fit one on a sample first.")
            if codebook.dim != dim:
                raise ValueError(f"codebook dim {codebook.dim} differs from dim {dim}.")
            if (dim * codebook.bits) % 8:
                raise ValueError(
                    f"dim {dim} x {codebook.bits} bits is not a whole number of bytes."
                )
        if projection is not None and projection.output_dim != dim:
            raise ValueError(f"projection output {projection.output_dim} differs from dim {dim}.")
        self.name: CodecName = name
        self.dim = dim
        self.codebook = codebook if name == "residual" else None
        self.projection = projection
        self.bits = self.codebook.bits if self.codebook is not None else 0
        self.tag = _tag(self.codebook, projection)

    @property
    def input_dim(self) -> int:
        """Dimension of the embeddings :meth:`encode` takes (the model's)."""
        return self.projection.input_dim if self.projection is not None else self.dim

    def prepare_query(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Query token embeddings in the stored space (projected if documents were)."""
        return self.projection.apply(embeddings) if self.projection is not None else embeddings

    @property
    def bytes_per_token(self) -> float:
        """Stored bytes per token embedding (the blob header aside)."""
        return payload_bytes(Header(self.name, self.bits, self.dim, 1, self.tag))

    def encode(self, embeddings: npt.NDArray[np.float32]) -> bytes:
        """Encode ``[tokens, input_dim]`` embeddings (at most 65,535 tokens)."""
        values = np.ascontiguousarray(embeddings, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != self.input_dim:
            raise ValueError(
                f"embeddings have shape {values.shape}, expected [tokens, {self.input_dim}]."
            )
        if self.projection is not None:
            values = self.projection.apply(values)
        count = values.shape[0]
        if count > MAX_TOKENS:
            raise ValueError(f"{count} tokens: a blob holds at most {MAX_TOKENS}; cap them first.")
        if not np.isfinite(values).all():
            raise ValueError("embeddings contain NaN or infinity.")
        header = _HEADER.pack(
            MAGIC, VERSION, _CODES[self.name], self.bits, self.dim, count, self.tag
        )
        if self.name == "float16":
            return header + values.astype("<f2").tobytes()
        if self.name == "int8":
            scale = np.abs(values).max(axis=1) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float16)
            quantised = np.clip(np.rint(values / scale.astype(np.float32)[:, None]), -127, 127)
            return bytes(
                header + scale.astype("<f2").tobytes() + quantised.astype(np.int8).tobytes()
            )
        centroids, codes = self._codebook().quantise(values)
        return header + centroids.astype("<u2").tobytes() + _pack_bits(codes, self.bits).tobytes()

    def check(self, blob: bytes) -> int:
        """Validate a blob's header and size for this codec; return its token count.

        Raises:
            CodecError: truncated or corrupted bytes, or another codec/dim/codebook.
        """
        header = read_header(blob)
        if header.codec != self.name or header.dim != self.dim:
            raise CodecError(
                f"blob is {header.codec} at dim {header.dim}; this reranker reads {self.name} at "
                f"dim {self.dim}"
            )
        if header.tag != self.tag:
            raise CodecError(
                f"blob was written with codebook/projection {header.tag:08x}, this reranker has "
                f"{self.tag:08x}: load the index's"
            )
        expected = payload_bytes(header)
        if len(blob) - HEADER_BYTES != expected:
            raise CodecError(
                f"blob payload is {len(blob) - HEADER_BYTES} bytes, its header promises "
                f"{expected} ({header.count} tokens): truncated or corrupted"
            )
        return header.count

    def decode(self, blob: bytes) -> npt.NDArray[np.float32]:
        """Decode a blob written by this codec (same codec, dim and codebook).

        Raises:
            CodecError: truncated or corrupted bytes, or another codec/dim/codebook.
        """
        out = np.empty((self.check(blob), self.dim), dtype=np.float32)
        self.decode_into(blob, out)
        return out

    def decode_into(self, blob: bytes, out: npt.NDArray[np.float32]) -> None:
        """Decode a blob already :meth:`check`-ed into ``out`` (``[count, dim]`` float32), so
        that many blobs can fill one concatenated buffer without another copy."""
        payload = memoryview(blob)[HEADER_BYTES:]
        count, dim = out.shape
        if self.name == "float16":
            out[:] = np.frombuffer(payload, dtype="<f2").reshape(count, dim)
            return
        if self.name == "int8":
            scale = np.frombuffer(payload[: 2 * count], dtype="<f2").astype(np.float32)
            values = np.frombuffer(payload[2 * count :], dtype=np.int8).reshape(count, dim)
            np.multiply(values, scale[:, None], out=out)
            return
        codebook = self._codebook()
        centroids = np.frombuffer(payload[: 2 * count], dtype="<u2").astype(np.int64)
        packed = np.frombuffer(payload[2 * count :], dtype=np.uint8).reshape(count, -1)
        codebook.reconstruct_into(centroids, packed, out)

    def decode_many(self, blobs: Sequence[bytes], counts: Sequence[int]) -> npt.NDArray[np.float32]:
        """Decode blobs already :meth:`check`-ed (with ``counts`` tokens each) into one
        ``[sum(counts), dim]`` buffer, in one vectorised pass over all of them.

        Raises:
            ValueError: a blob does not decode (a residual centroid id beyond the codebook);
                decode one at a time with :meth:`decode_into` to find which.
        """
        total = int(sum(counts))
        out = np.empty((total, self.dim), dtype=np.float32)
        if not blobs:
            return out
        if self.name == "float16":
            joined = b"".join(memoryview(b)[HEADER_BYTES:] for b in blobs)
            out[:] = np.frombuffer(joined, dtype="<f2").reshape(total, self.dim)
            return out
        heads = b"".join(
            memoryview(b)[HEADER_BYTES : HEADER_BYTES + 2 * n]
            for b, n in zip(blobs, counts, strict=True)
        )
        rest = b"".join(
            memoryview(b)[HEADER_BYTES + 2 * n :] for b, n in zip(blobs, counts, strict=True)
        )
        if self.name == "int8":
            scale = np.frombuffer(heads, dtype="<f2").astype(np.float32)
            values = np.frombuffer(rest, dtype=np.int8).reshape(total, self.dim)
            np.multiply(values, scale[:, None], out=out)
            return out
        centroids = np.frombuffer(heads, dtype="<u2").astype(np.int64)
        packed = np.frombuffer(rest, dtype=np.uint8).reshape(total, -1)
        self._codebook().reconstruct_into(centroids, packed, out)
        return out

    def _codebook(self) -> Codebook:
        if self.codebook is None:
            raise ValueError(f"The {self.name} codec has no codebook.")
        return self.codebook


def _tag(codebook: Codebook | None, projection: Projection | None) -> int:
    if codebook is None and projection is None:
        return 0
    parts = [codebook.sha256 if codebook else "", projection.sha256 if projection else ""]
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:8], 16)


def _pack_bits(codes: npt.NDArray[np.uint8], bits: int) -> npt.NDArray[np.uint8]:
    """``[tokens, dim]`` codes of ``bits`` bits each -> ``[tokens, dim*bits/8]`` bytes."""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint8)
    expanded = (codes[..., None] >> shifts) & 1  # [tokens, dim, bits], most significant first
    return np.packbits(expanded.reshape(codes.shape[0], -1).astype(np.uint8), axis=1)
