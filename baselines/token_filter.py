"""``token_filter``: a blocklist, the weakest possible "erasure", as a reference point.

The concept's words are filtered out of every prompt: their rows of the text encoder's
token-embedding table are replaced by the embedding of ``replacement`` (by default the
end-of-text token, so a filtered word reads like padding). The UNet is untouched, so the
model still knows how to draw the concept: the robustness task's recovery attack, which
searches the conditioning near the concept's, should bring it back almost completely.
That is the check that the attack has teeth; on the leaderboard the row shows how much of
a method's erasure is more than hiding a word.

Only whole tokens of the concept are filtered (a word the tokenizer splits loses all its
pieces, which may also be pieces of other words: a documented side effect of blocklists).
"""

from __future__ import annotations

import torch
from pydantic import Field

from erasebench.edits import EditedModel
from erasebench.models import DiffusionModel
from erasebench.plugins import Eraser, PluginConfig
from erasebench.registry import register_eraser
from erasebench.specs import ErasureRequest


def token_table(model: DiffusionModel) -> str:
    """The qualified name of the text encoder's token-embedding table (its path inside
    CLIPTextModel differs between transformers versions)."""
    for name, _ in model.named_parameters():
        if name.startswith("text_encoder.") and name.endswith("token_embedding.weight"):
            return name
    raise ValueError("the text encoder has no token_embedding table")


class TokenFilterConfig(PluginConfig):
    replacement: str = Field("", description="Word whose embedding replaces the filtered "
                             "tokens' (its first token); '' = the end-of-text token.")


@register_eraser("token_filter")
class TokenFilter(Eraser):
    """Blocklist: the concept's tokens embed as ``replacement``; the UNet is untouched."""

    Config = TokenFilterConfig
    in_default_run = False  # a reference point for the robustness task, not a method

    def editable_parameters(self, model: DiffusionModel) -> list[str]:
        return [token_table(model)]

    def concept_tokens(self, model: DiffusionModel, concepts: tuple[str, ...]) -> list[int]:
        special = set(model.tokenizer.all_special_ids)
        tokens = {int(t) for concept in concepts
                  for t in model.tokenizer(concept).input_ids if int(t) not in special}
        return sorted(tokens)

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        config: TokenFilterConfig = self.config  # type: ignore[assignment]
        tokenizer = model.tokenizer
        if config.replacement:
            pieces = [t for t in tokenizer(config.replacement).input_ids
                      if t not in set(tokenizer.all_special_ids)]
            replacement = pieces[0]
        else:
            replacement = tokenizer.eos_token_id
        name = token_table(model)
        table = model.parameter(name).detach().cpu().clone()
        tokens = [t for t in self.concept_tokens(model, request.concepts) if t != replacement]
        weights = {}
        if tokens:
            table[torch.tensor(tokens)] = table[replacement].clone()
            weights[name] = table
        return EditedModel(self.name, self.config.model_dump(mode="json"), request,
                           model.fingerprint, weights=weights)
