"""Whole pretraining step (models/hubert_pretrain.c: trunk + masked prediction + feature penalty +
topic head, feature_grad_mult) vs torchaudio 0.13 hubert_pretrain_model + hubert_loss, tiny
configs. Loss < 1e-5, logits < 1e-4, accuracies exact, every parameter gradient < 1e-4 per tensor.
Oracle details: tests/parity/pretrain_lib.py. The Base step is test_pretrain_torchaudio_base.py (slow)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_lib  # noqa: E402

SMALL_CONV = [(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 3, 2), (32, 2, 2), (32, 2, 2)]
CASES = [
    dict(name="group-norm post-LN, mult 0.1, masked only, topic on layer 1", norm="group", conv=SMALL_CONV,
         conv_bias=False, hidden=64, layers=2, heads=4, ffn=96, pos_k=16, pos_g=4, pre_ln=False,
         lens=[8000, 5123, 3337], mult=0.1, K=13, final_dim=16, w_m=1.0, w_u=0.0, w_f=10.0,
         topic_k=5, topic_layer=1, topic_w=0.7),
    dict(name="layer-norm pre-LN, conv bias, odd pos kernel, mult 1, unmasked 0.5, topic on last layer",
         norm="layer", conv=SMALL_CONV, conv_bias=True, hidden=48, layers=2, heads=3, ffn=80, pos_k=15, pos_g=3,
         pre_ln=True, lens=[6400, 4000], mult=1.0, K=11, final_dim=12, w_m=1.0, w_u=0.5, w_f=3.0,
         topic_k=4, topic_layer=2, topic_w=1.3),
]

if __name__ == "__main__":
    sys.exit(pretrain_lib.main(CASES, "test_pretrain_torchaudio", contribution_case=CASES[0]))
