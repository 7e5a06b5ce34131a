"""Flow prompt encoding: for plain prompts it equals diffusers' own encode_prompt of each family (with
Forge's 256-token T5 padding); emphasis, BREAK and long prompts behave as Forge's T5 engine."""

from __future__ import annotations

from pathlib import Path

import diffusers
import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from sdweb.engines.flow.text import FlowTextEncoder, TextOptions
from sdweb.models.families import get_family
from sdweb.prompts.t5 import encode_t5, t5_segments
from sdweb.testing.tiny import load_tiny_tokenizer

T5_TOKENIZER_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "tokenizers" / "t5-xxl"
PROMPT = "a photo of a cat, sitting on a red mat"


def _t5_tokenizer():
    from transformers import T5TokenizerFast

    import sdweb.models

    bundled = Path(sdweb.models.__file__).parent / "configs" / "t5_tokenizer"
    return T5TokenizerFast.from_pretrained(bundled if bundled.is_dir() else T5_TOKENIZER_DIR)


def _clip(width: int, projection: bool, seed: int):
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=3,
                            num_attention_heads=2, max_position_embeddings=77, projection_dim=width,
                            hidden_act="quick_gelu")
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def _t5(seed: int = 7, width: int = 32):
    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=32128, d_model=width, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")).eval()


@pytest.fixture(scope="module")
def tokenizers():
    return load_tiny_tokenizer(), _t5_tokenizer()


def test_flux_matches_diffusers_encode_prompt(tokenizers):
    clip_tok, t5_tok = tokenizers
    pipe = diffusers.FluxPipeline(scheduler=None, vae=None, transformer=None, text_encoder=_clip(32, False, 1),
                                  tokenizer=clip_tok, text_encoder_2=_t5(), tokenizer_2=t5_tok)
    ours = FlowTextEncoder(pipe, get_family("flux-dev").text_encoders, TextOptions(), {}).encode(PROMPT)
    embeds, pooled, _ = pipe.encode_prompt(PROMPT, None, max_sequence_length=256)
    torch.testing.assert_close(ours.embeds, embeds)
    torch.testing.assert_close(ours.pooled, pooled)
    assert ours.mask is None


def test_chroma_matches_diffusers_encode_prompt(tokenizers):
    _, t5_tok = tokenizers
    pipe = diffusers.ChromaPipeline(scheduler=None, vae=None, transformer=None, text_encoder=_t5(),
                                    tokenizer=t5_tok)
    ours = FlowTextEncoder(pipe, get_family("chroma").text_encoders, TextOptions(), {}).encode(PROMPT)
    embeds, _, mask, *_ = pipe.encode_prompt(PROMPT, negative_prompt=None, do_classifier_free_guidance=False,
                                          max_sequence_length=256)
    torch.testing.assert_close(ours.embeds, embeds)
    assert torch.equal(ours.mask, mask.bool())


def test_sd3_matches_diffusers_encode_prompt(tokenizers):
    clip_tok, t5_tok = tokenizers
    g_tok = load_tiny_tokenizer()
    g_tok.pad_token = "!"  # SD3's tokenizer_2 pads with "!" (id 0)
    pipe = diffusers.StableDiffusion3Pipeline(
        scheduler=None, vae=None, transformer=None, text_encoder=_clip(32, True, 1), tokenizer=clip_tok,
        text_encoder_2=_clip(48, True, 2), tokenizer_2=g_tok, text_encoder_3=_t5(width=96), tokenizer_3=t5_tok)
    ours = FlowTextEncoder(pipe, get_family("sd35-medium").text_encoders, TextOptions(), {}).encode(PROMPT)
    embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, PROMPT, PROMPT, do_classifier_free_guidance=False,
                                              max_sequence_length=256)
    torch.testing.assert_close(ours.embeds, embeds, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.pooled, pooled)


def test_t5_emphasis_break_and_long_prompts(tokenizers):
    _, t5_tok = tokenizers
    encoder = _t5()
    plain = encode_t5(encoder, t5_tok, "a red cat", min_length=16)
    assert plain.embeds.shape[1] == 16 and int(plain.mask.sum()) == len(t5_segments("a red cat", t5_tok)[0].tokens) + 2
    weighted = encode_t5(encoder, t5_tok, "a (red:1.5) cat", min_length=16)
    assert not torch.allclose(weighted.embeds, plain.embeds)
    assert torch.allclose(weighted.embeds.mean(), plain.embeds.mean(), atol=1e-5)  # "Original" keeps the mean
    ignored = encode_t5(encoder, t5_tok, "a (red:1.5) cat", min_length=16, emphasis="Ignore")
    torch.testing.assert_close(ignored.embeds, plain.embeds)
    split = encode_t5(encoder, t5_tok, "a red cat BREAK on a mat", min_length=16)
    assert split.embeds.shape[1] == 32  # two segments, each padded to 16
    long = encode_t5(encoder, t5_tok, " ".join(["cat"] * 40), min_length=16)
    assert long.embeds.shape[1] == 41  # never truncated: 40 tokens + EOS
