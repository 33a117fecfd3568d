"""Print the folder to pass as fairseq's ``--user-dir``: ``fairseq-train ... --user-dir $(python -m seq2seq.user_dir)``.

fairseq imports ``--user-dir`` by its folder name, so the printed path must be this installed package itself (a copy
elsewhere, also named ``seq2seq``, would be refused as "not globally unique").
"""

from .cli_runs import plugin_dir

if __name__ == "__main__":
    print(plugin_dir())
