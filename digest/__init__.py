"""digest: trending research papers, matched to each subscriber's topics, in their inbox."""

__version__ = "0.1.0"
