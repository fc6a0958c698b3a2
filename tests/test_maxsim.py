"""MaxSim, vectorised over all candidates, against the per-document definition."""

from __future__ import annotations

import pytest
import torch

from colbert_rerank.maxsim import PackedDocuments, align, maxsim, maxsim_reference


@pytest.mark.parametrize("seed", range(5))
def test_equals_the_reference_with_padding_and_negative_similarities(seed):
    generator = torch.Generator().manual_seed(seed)
    dim = 16
    query = torch.randn(7, dim, generator=generator)  # not normalised: negative dot products
    lengths = [1, 5, 40, 3, 17, 2]  # very different lengths: heavy padding in the padded view
    docs = [torch.randn(n, dim, generator=generator) for n in lengths]
    docs[1] = -docs[1].abs() * query[0].sign()  # a document scoring negative everywhere
    fast = maxsim(query, PackedDocuments.pack(docs))
    slow = maxsim_reference(query, docs)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert fast.shape == (len(docs),)


def test_single_document_and_single_token():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    doc = torch.tensor([[0.5, -2.0]])
    assert maxsim(query, PackedDocuments.pack([doc])).tolist() == pytest.approx([0.5 - 2.0])


def test_errors():
    with pytest.raises(ValueError, match="Document 1 has no token embeddings"):
        PackedDocuments.pack([torch.ones(2, 3), torch.ones(0, 3)])
    with pytest.raises(ValueError, match=r"Document 1 has shape \(2, 4\), expected \[tokens, 3\]"):
        PackedDocuments.pack([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="No documents"):
        PackedDocuments.pack([])
    with pytest.raises(ValueError, match="Query dim 4 differs from the documents' 3"):
        maxsim(torch.ones(2, 4), PackedDocuments.pack([torch.ones(2, 3)]))
    with pytest.raises(ValueError, match="expected \\[tokens, dim\\]"):
        maxsim(torch.ones(0, 3), PackedDocuments.pack([torch.ones(2, 3)]))


def test_alignment_is_the_argmax_and_adds_up():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    doc = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.0, 0.5]])
    matches = align(query, doc)
    assert [m.document_position for m in matches] == [0, 1]
    total = sum(m.similarity for m in matches)
    assert total == pytest.approx(maxsim(query, PackedDocuments.pack([doc])).item())


@pytest.mark.gpu
def test_cpu_and_gpu_agree():
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(32, 128, generator=generator)
    docs = [torch.randn(n, 128, generator=generator) for n in (10, 200, 57)]
    cpu = maxsim(query, PackedDocuments.pack(docs))
    packed = PackedDocuments.pack([d.cuda() for d in docs])
    gpu = maxsim(query.cuda(), packed).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
