"""ctest-labels: parity slow
One HuBERT Base pretraining step (2 utterances, 2 s and 1.6 s: padded) of models/hubert_pretrain.c
vs torchaudio 0.13 hubert_pretrain_model + hubert_loss (+ topic head on layer 9), random weights,
dropout off, feature_grad_mult 0.1: loss < 1e-5, logits < 1e-4, every gradient < 1e-4 per tensor.
Oracle details: tests/parity/pretrain_lib.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_lib  # noqa: E402

BASE_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
CASES = [
    dict(name="Base (group-norm post-LN), 2 x 2 s padded, mult 0.1, topic on layer 9", norm="group", conv=BASE_CONV,
         conv_bias=False, hidden=768, layers=12, heads=12, ffn=3072, pos_k=128, pos_g=16, pre_ln=False,
         lens=[32000, 25600], mult=0.1, K=100, final_dim=256, w_m=1.0, w_u=0.0, w_f=10.0,
         topic_k=20, topic_layer=9, topic_w=1.0),
]

if __name__ == "__main__":
    sys.exit(pretrain_lib.main(CASES, "test_pretrain_torchaudio_base"))
