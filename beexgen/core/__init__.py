"""The bottom of the stack: what train/, codegen/ and host/ share and nothing else.

- artifact   the artifact format: load, save, pack sign bits (numpy)
- validate   every field, shape and value of an artifact checked (pure Python)
- numerics   the float algorithms C and PyTorch both follow (numpy)
- wide       the wide exit's integer rules: hashing, buckets, quantization (numpy)
- cost       compute and size accounting (numpy)
- protocol   the serial grammar, status codes and strict reply parsing (pure Python)
- textfile   the .tsv/.csv table reader of training and beexgen-infer (pure Python)
- wordpiece  the tokenizer pipeline the C reproduces, and its check (pure Python)

Nothing here imports torch, jinja2, pyserial or anything above it (tests/test_layers.py);
`validate`, `protocol`, `textfile` and `wordpiece` import nothing beyond the standard
library, so a host-only install (`pip install 'beexgen[host]'`) can check artifacts and
talk to a board.
"""
