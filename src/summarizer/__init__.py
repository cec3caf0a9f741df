"""summarizer: grounded structured summaries of Chinese CPPCC (政协) work reports."""

__version__ = "0.1.0"
