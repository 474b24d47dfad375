"""Where encoder model folders come from: pinned wheels rebuilt into local transformers folders."""
