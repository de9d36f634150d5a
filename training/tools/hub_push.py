"""Upload an exported model folder to a Hugging Face hub repository. Runs in the engine environment
(``huggingface_hub``).

    HF_TOKEN=... [HF_ENDPOINT=...] python -m training.tools.hub_push DIR ORG/NAME

The token comes through the environment, never the command line (which other users of the
machine can read). Creates the repository (private) when it does not exist, then uploads the
folder. Exits 2 with a one-line reason on stderr when the hub refuses or cannot be reached;
prints the commit URL on success.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("repo")
    args = parser.parse_args(argv)
    if not os.environ.get("HF_TOKEN"):
        print("no HF_TOKEN in the environment", file=sys.stderr)
        return 2
    try:
        from huggingface_hub import HfApi

        api = HfApi(token=os.environ["HF_TOKEN"])
        api.create_repo(args.repo, repo_type="model", private=True, exist_ok=True)
        info = api.upload_folder(folder_path=args.folder, repo_id=args.repo, repo_type="model",
                                 commit_message="Export from the LLM arena")
    except Exception as exc:  # noqa: BLE001 - network, auth and hub errors all mean "not pushed"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{type(exc).__name__}: {text}"[:500], file=sys.stderr)
        return 2
    print(getattr(info, "commit_url", "") or str(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
