"""MUVERA fixed-dimensional encodings (FDE): one vector per text whose dot product tracks MaxSim.

Dhulipala et al., "MUVERA: Multi-Vector Retrieval via Fixed Dimensional Encodings" (NeurIPS
2024). Each repetition splits token space into ``2**simhash_bits`` partitions by the signs of
``simhash_bits`` Gaussian hyperplanes (SimHash). A query's block for a partition is the SUM of
its tokens there; a document's is the AVERAGE, and (``fill_empty``) an empty partition takes
the document token whose SimHash code is nearest in Hamming distance (ties: the earliest
token). Each block goes through the repetition's random ``±1/sqrt(projection_dim)`` projection
(an AMS sketch; none when ``projection_dim`` is ``None``), the repetitions' blocks are
concatenated (repetition-major, then partition, then coordinate), and an optional count sketch
maps the concatenation to ``final_dim`` coordinates. So ``<fde(query), fde(document)>``
approximates Chamfer similarity (:func:`chamfer`, exact MaxSim), and a plain dense-vector
index can stand in for a late-interaction first stage.

Choice of :data:`DEFAULT_MUVERA` (``benchmarks/muvera_tuning.py`` on BEIR SciFact: 5,183
documents of 211 tokens on average, 300 test queries, all-MiniLM-L6-v2 zero-shot tokens of 384
dims; 36 configurations, each the mean of matrix seeds 0 and 1; table in
``benchmarks/results/muvera/tuning.md``). Rule: the best recall@100 against exact MaxSim's top
100 at 4096 dims or fewer (Elasticsearch's ``dense_vector`` limit), then the smallest dimension
within 0.01 of it. Best: 1 bit, no projection, 5 repetitions (3840 dims), 0.549. Chosen: 1 bit,
no projection, 3 repetitions, 2304 dims: 0.543 (MaxSim's top 10 in the FDE top 100: 0.902;
recall@100 against the qrels 0.905 and nDCG@10 0.606, or 0.703 once the top 100 is reranked by
exact MaxSim, against 0.935 and 0.710 for exact MaxSim over the whole corpus), about 0.1 ms
per 100-token document here. Finer partitions did worse on these tokens: 3 bits x d_proj 16 x
32 repetitions 0.519, the paper's regime of 5 bits x 16 x 8 0.384, both at 4096 dims. The
contextual tokens of a sentence-embedding model sit close to their mean: plain mean pooling
(384 dims) reaches 0.539, so with this model the partitions add little. For a trained ColBERT
checkpoint, tune again (start from 4-6 bits, d_proj 16-32, as many repetitions as fit).

All random matrices are drawn once, from ``config.seed``, with numpy's ``default_rng``; their
sha256 goes into :meth:`MuveraEncoder.fingerprint`, so an index and a query path that drew
different matrices (another numpy stream) are told apart by
:meth:`MuveraEncoder.from_fingerprint`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from colbert_rerank.checks import check_positive_ints

__all__ = ["DEFAULT_MUVERA", "MuveraConfig", "MuveraEncoder", "chamfer"]

FORMAT = "colbert_rerank.muvera/1"
MAX_SIMHASH_BITS = 12
CHUNK_ENTRIES = 1 << 24  # array entries per chunk (padded tokens x what each holds): ~64 MB

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MuveraConfig:
    """How to build fixed-dimensional encodings.

    Attributes:
        simhash_bits: ``k_sim``; each repetition has ``2**simhash_bits`` partitions (1..12).
        projection_dim: ``d_proj``, the coordinates each partition's block keeps after the
            random ``±1/sqrt(d_proj)`` projection; ``None`` keeps the token's own coordinates.
        repetitions: ``R_reps``, independent partitionings whose blocks are concatenated.
        final_dim: coordinates of the final count sketch of the concatenation; ``None``: none.
        seed: seed of every random matrix (``numpy.random.default_rng``), 0 or more.
        fill_empty: documents only: an empty partition takes the token nearest by Hamming
            distance of SimHash codes (the paper's ``fill_empty_partitions``).

    Example:
        >>> MuveraConfig(simhash_bits=4, projection_dim=16, repetitions=8).dimension(384)
        2048
    """

    simhash_bits: int
    projection_dim: int | None
    repetitions: int
    final_dim: int | None = None
    seed: int = 0
    fill_empty: bool = True

    def __post_init__(self) -> None:
        bits = self.simhash_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_SIMHASH_BITS:
            raise ValueError(
                f"simhash_bits={bits!r}: expected an integer from 1 to {MAX_SIMHASH_BITS} "
                "(2**simhash_bits partitions per repetition), e.g. DEFAULT_MUVERA's."
            )
        check_positive_ints(self, "repetitions")
        check_positive_ints(self, "projection_dim", "final_dim", optional=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: expected an integer 0 or more.")
        if not isinstance(self.fill_empty, bool):
            raise ValueError(f"fill_empty={self.fill_empty!r}: expected True or False.")

    @property
    def partitions(self) -> int:
        """Partitions per repetition, ``2**simhash_bits``."""
        return 1 << self.simhash_bits

    def concatenated_dim(self, token_dim: int) -> int:
        """Coordinates before the final projection: ``repetitions * partitions * block``."""
        if isinstance(token_dim, bool) or not isinstance(token_dim, int) or token_dim < 1:
            raise ValueError(
                f"token_dim={token_dim!r}: expected a positive integer, the coordinates per "
                "token (e.g. 384 for all-MiniLM-L6-v2)."
            )
        block = self.projection_dim or token_dim
        return self.repetitions * self.partitions * block

    def dimension(self, token_dim: int) -> int:
        """The encoding's length for tokens of ``token_dim`` coordinates.

        Raises:
            ValueError: ``token_dim`` is not a positive integer, or ``final_dim`` is larger
                than the concatenation it would compress.
        """
        concatenated = self.concatenated_dim(token_dim)
        if self.final_dim is None:
            return concatenated
        if self.final_dim > concatenated:
            raise ValueError(
                f"final_dim={self.final_dim} is larger than the concatenation it compresses "
                f"({concatenated} = {self.repetitions} repetitions x {self.partitions} "
                f"partitions x {self.projection_dim or token_dim}): pass final_dim=None or "
                f"at most {concatenated}."
            )
        return self.final_dim


DEFAULT_MUVERA = MuveraConfig(simhash_bits=1, projection_dim=None, repetitions=3)


class MuveraEncoder:
    """Fixed-dimensional encodings of token-embedding sets, with matrices drawn once.

    Attributes:
        config: the :class:`MuveraConfig`.
        token_dim: coordinates per input token.
        dimension: coordinates per encoding (``config.dimension(token_dim)``).

    Example:
        >>> import numpy as np
        >>> encoder = MuveraEncoder(MuveraConfig(3, 8, 4), token_dim=16)
        >>> tokens = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32)
        >>> encoder.encode_documents([tokens, tokens[:0]]).shape
        (2, 256)
    """

    def __init__(self, config: MuveraConfig, token_dim: int) -> None:
        self.config = config
        self.token_dim = token_dim
        self.dimension = config.dimension(token_dim)
        reps, bits, proj = config.repetitions, config.simhash_bits, config.projection_dim
        rng = np.random.default_rng(config.seed)
        # [token_dim, reps * bits]: repetition r's hyperplanes are columns r*bits .. r*bits+bits-1.
        self._simhash: Matrix = rng.standard_normal((token_dim, reps * bits)).astype(np.float32)
        self._projection: Matrix | None = None  # [token_dim, reps * proj]
        if proj is not None:
            signs = rng.integers(0, 2, size=(token_dim, reps * proj), dtype=np.int8) * 2 - 1
            self._projection = (signs / np.sqrt(proj)).astype(np.float32)
        self._buckets: npt.NDArray[np.int64] | None = None  # count sketch, per coordinate
        self._signs: Matrix | None = None
        if config.final_dim is not None:
            concatenated = config.concatenated_dim(token_dim)
            self._buckets = rng.integers(0, config.final_dim, size=concatenated, dtype=np.int64)
            self._signs = (rng.integers(0, 2, size=concatenated) * 2 - 1).astype(np.float32)
            self._order = np.argsort(self._buckets, kind="stable")
            ordered = self._buckets[self._order]
            self._first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            self._used = ordered[self._first]  # the buckets some coordinate lands in
        drawn = [m for m in (self._simhash, self._projection) if m is not None]
        self._weights = np.concatenate(drawn, axis=1)  # one product hashes and projects
        self._popcount = np.array([bin(c).count("1") for c in range(config.partitions)], np.uint8)
        self._sha256 = _matrices_sha256(self._simhash, self._projection, self._buckets, self._signs)

    def encode_documents(self, embeddings: Sequence[npt.NDArray[Any]]) -> Matrix:
        """Document encodings: per partition the AVERAGE of its tokens (``fill_empty`` fills).

        Args:
            embeddings: per document ``[tokens, token_dim]`` floats (0 tokens: a zero row).

        Returns:
            ``[documents, dimension]`` float32.
        """
        return self._encode(embeddings, average=True, fill=self.config.fill_empty)

    def encode_queries(self, embeddings: Sequence[npt.NDArray[Any]]) -> Matrix:
        """Query encodings: per partition the SUM of its tokens, empty partitions left at 0.

        Args:
            embeddings: per query ``[tokens, token_dim]`` floats (0 tokens: a zero row).

        Returns:
            ``[queries, dimension]`` float32.
        """
        return self._encode(embeddings, average=False, fill=False)

    def fingerprint(self) -> dict[str, Any]:
        """What rebuilds this encoder, JSON-able: the config fields, ``token_dim``,
        ``dimension`` and ``matrices_sha256`` (the drawn matrices' hash)."""
        return {
            "format": FORMAT,
            **asdict(self.config),
            "token_dim": self.token_dim,
            "dimension": self.dimension,
            "matrices_sha256": self._sha256,
        }

    @classmethod
    def from_fingerprint(cls, meta: Mapping[str, Any]) -> MuveraEncoder:
        """The encoder :meth:`fingerprint` describes, with the same random matrices.

        Raises:
            ValueError: ``meta`` is not a fingerprint of this format (missing or unknown keys),
                or the matrices drawn here differ from the recorded ones (another numpy
                random stream): the encodings would not be comparable.
        """
        names = [field.name for field in fields(MuveraConfig)]
        expected = {"format", *names, "token_dim", "dimension", "matrices_sha256"}
        if meta.get("format") != FORMAT or set(meta) != expected:
            raise ValueError(
                f"Not a MUVERA fingerprint of format {FORMAT!r} (format {meta.get('format')!r}, "
                f"missing keys {sorted(expected - set(meta))}, unknown keys "
                f"{sorted(set(meta) - expected)}): pass what MuveraEncoder.fingerprint() wrote."
            )
        encoder = cls(MuveraConfig(**{name: meta[name] for name in names}), meta["token_dim"])
        for key in ("dimension", "matrices_sha256"):
            if encoder.fingerprint()[key] != meta[key]:
                raise ValueError(
                    f"MUVERA {key} differs: recorded {meta[key]!r}, rebuilt from seed "
                    f"{encoder.config.seed} with numpy {np.__version__}: "
                    f"{encoder.fingerprint()[key]!r}. The stored encodings would not match "
                    "this encoder's: query with the numpy that built the index, or re-encode "
                    "the index with this one."
                )
        return encoder

    def _encode(self, embeddings: Sequence[npt.NDArray[Any]], average: bool, fill: bool) -> Matrix:
        arrays = _checked(embeddings, self.token_dim)
        out = np.zeros((len(arrays), self.dimension), dtype=np.float32)
        counts = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        order = np.argsort(counts, kind="stable")  # similar lengths share a chunk: less padding
        block = self.config.projection_dim or self.token_dim
        reps = self.config.repetitions
        # per padded token: its embedding, its projections, its partition memberships
        budget = CHUNK_ENTRIES // (self.token_dim + reps * block + reps * self.config.partitions)
        for chunk in _chunks(counts[order], budget):
            rows = order[chunk]
            blocks = self._blocks([arrays[i] for i in rows], average, fill)
            out[rows] = self._final(blocks.reshape(len(rows), -1))
        return out

    def _blocks(self, arrays: list[Matrix], average: bool, fill: bool) -> Matrix:
        """``[texts, reps, parts, block]``: each partition's sum (or average) of its tokens."""
        counts = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        present = np.arange(max(int(counts.max()), 1)) < counts[:, None]  # [texts, longest]
        padded = np.zeros((*present.shape, self.token_dim), dtype=np.float32)
        padded[present] = np.concatenate(arrays)
        codes, projected = self._hashed(padded)  # [texts, reps, longest], [.., longest, block]
        partition = np.arange(self.config.partitions)[:, None]
        member = (codes[:, :, None, :] == partition) & present[:, None, None, :]
        sums: Matrix = member.astype(np.float32) @ projected  # [texts, reps, parts, block]
        filled = member.sum(axis=-1)
        if average:
            sums /= np.maximum(filled, 1)[..., None]
        if fill:
            empty = (filled == 0) & (counts > 0)[:, None, None]
            self._fill_empty(sums, empty, codes, present, projected)
        return sums

    def _hashed(self, padded: Matrix) -> tuple[npt.NDArray[np.int32], Matrix]:
        """SimHash partition ids ``[texts, reps, longest]`` (bit ``i`` set when hyperplane
        ``i`` is positive) and the projected tokens ``[texts, reps, longest, block]`` (one
        shared repetition axis when there is no projection)."""
        texts, longest = padded.shape[:2]
        reps, bits = self.config.repetitions, self.config.simhash_bits
        product = padded @ self._weights  # one product: hyperplanes, then projections
        signs = (product[..., : reps * bits] > 0).reshape(texts, longest, reps, bits)
        codes = np.zeros((texts, longest, reps), dtype=np.int32)
        for bit in range(bits):
            codes |= signs[..., bit].astype(np.int32) << bit
        if self._projection is None:
            return codes.transpose(0, 2, 1), padded[:, None]
        projected = product[..., reps * bits :].reshape(texts, longest, reps, -1)
        return codes.transpose(0, 2, 1), projected.transpose(0, 2, 1, 3)

    def _fill_empty(
        self,
        sums: Matrix,
        empty: npt.NDArray[np.bool_],
        codes: npt.NDArray[np.int32],
        present: npt.NDArray[np.bool_],
        projected: Matrix,
    ) -> None:
        """Give each ``empty`` partition (``[texts, reps, parts]``) its token nearest by
        Hamming distance of SimHash codes, ties to the earliest token, in ``sums`` (in place)."""
        doc, rep, part = np.nonzero(empty)
        if doc.size == 0:
            return
        # Only the (text, repetition) pairs with an empty partition: [pairs, parts, longest].
        pairs, where = np.unique(doc * self.config.repetitions + rep, return_inverse=True)
        pair_doc, pair_rep = np.divmod(pairs, self.config.repetitions)
        partition = np.arange(self.config.partitions)[:, None]
        distance = self._popcount[codes[pair_doc, pair_rep][:, None, :] ^ partition]
        distance[~present[pair_doc][:, None, :].repeat(partition.size, axis=1)] = 255  # padding
        nearest = distance.argmin(axis=-1)[where, part]  # argmin: the first of equals
        source_rep = rep if projected.shape[1] > 1 else np.zeros_like(rep)
        sums[doc, rep, part] = projected[doc, source_rep, nearest]

    def _final(self, concatenated: Matrix) -> Matrix:
        """The count sketch of ``[n, concatenated_dim]`` rows, or the rows themselves."""
        if self._buckets is None or self._signs is None or self.config.final_dim is None:
            return concatenated
        out = np.zeros((concatenated.shape[0], self.config.final_dim), dtype=np.float32)
        signed = (concatenated * self._signs)[:, self._order]
        out[:, self._used] = np.add.reduceat(signed, self._first, axis=1)
        return out


def chamfer(query: npt.NDArray[Any], document: npt.NDArray[Any]) -> float:
    """Exact Chamfer similarity (MaxSim): the sum over query tokens of their best dot product.

    Args:
        query: ``[query_tokens, dim]``.
        document: ``[document_tokens, dim]``; with 0 tokens the score is 0.0 (as its
            encoding, a zero row, scores).

    Example:
        >>> import numpy as np
        >>> chamfer(np.eye(2), np.array([[1.0, 0.0], [0.5, 0.5]]))
        1.5
    """
    q, d = _checked_array(query, "query", None), _checked_array(document, "document", None)
    if q.shape[1] != d.shape[1]:
        raise ValueError(
            f"query tokens have {q.shape[1]} coordinates, document tokens {d.shape[1]}: "
            "encode both with the same model."
        )
    if q.shape[0] == 0 or d.shape[0] == 0:
        return 0.0
    scores = q.astype(np.float64) @ d.astype(np.float64).T
    return float(scores.max(axis=1).sum())


def _checked(embeddings: Sequence[npt.NDArray[Any]], token_dim: int) -> list[Matrix]:
    """The arrays as float32, after checking each one (:func:`_checked_array`)."""
    if isinstance(embeddings, np.ndarray):
        raise TypeError(
            f"embeddings is one array of shape {embeddings.shape}: pass a sequence of per-text "
            "[tokens, dim] arrays, e.g. [array] for one text."
        )
    return [_checked_array(a, f"embeddings[{i}]", token_dim) for i, a in enumerate(embeddings)]


def _checked_array(array: npt.NDArray[Any], name: str, token_dim: int | None) -> Matrix:
    """``array`` as contiguous float32 ``[tokens, token_dim]`` (any width when ``None``).

    Raises:
        TypeError: not a numpy array of real numbers.
        ValueError: not 2-D, the wrong width, or NaN/infinite values; names ``name``.
    """
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        kind = f"dtype {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
        raise TypeError(f"{name} is {kind}: pass a float numpy array [tokens, dim].")
    if array.ndim != 2 or (token_dim is not None and array.shape[1] != token_dim):
        width = "dim" if token_dim is None else token_dim
        raise ValueError(
            f"{name} has shape {array.shape}: expected [tokens, {width}] (one row per token; "
            "reshape a single token with array[None, :], and encode with the model whose "
            "width the encoder was built for)."
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values: encode the text again or drop it.")
    return np.ascontiguousarray(array, dtype=np.float32)


def _chunks(sorted_counts: npt.NDArray[np.int64], budget: int) -> list[slice]:
    """Consecutive groups of texts (``sorted_counts``: their token counts, ascending) whose
    padded size, texts x longest, stays within ``budget`` (a text alone may exceed it)."""
    chunks, start = [], 0
    for stop in range(1, len(sorted_counts) + 1):
        if stop - start > 1 and (stop - start) * max(int(sorted_counts[stop - 1]), 1) > budget:
            chunks.append(slice(start, stop - 1))
            start = stop - 1
    return [*chunks, slice(start, len(sorted_counts))] if len(sorted_counts) else []


def _matrices_sha256(*matrices: npt.NDArray[Any] | None) -> str:
    digest = hashlib.sha256()
    for matrix in matrices:
        if matrix is not None:
            digest.update(str(matrix.dtype.str).encode() + str(matrix.shape).encode())
            digest.update(np.ascontiguousarray(matrix).tobytes())
    return digest.hexdigest()
