import open_clip
import pytest

from erasebench.tokenizer import sd_tokenizer, write_clip_tokenizer_files

PROMPTS = [
    "Image of Garbage Truck",
    "a painting in the style of Van Gogh!!",
    "naked woman, 4k, artstation, highly detailed — ünïcödé 🙂",
    "a " * 100,  # longer than 77 tokens: truncated with EOS kept
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_same_ids_as_openai_clip(prompt):
    tokenizer = sd_tokenizer()
    ours = tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    reference = open_clip.tokenize([prompt])[0].tolist()
    length = sum(1 for token in reference if token)
    assert ours[:length] == reference[:length]
    # SD pads with the end token (49407), where open_clip pads with 0.
    assert set(ours[length:]) <= {tokenizer.eos_token_id}


def test_sd_settings():
    tokenizer = sd_tokenizer()
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        49406, 49407, 49407)


def test_files_load_back(tmp_path):
    from transformers import CLIPTokenizer

    write_clip_tokenizer_files(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path)
    assert loaded("a cat").input_ids == sd_tokenizer()("a cat").input_ids
