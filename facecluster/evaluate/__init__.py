"""Measure face detection, embedding and clustering quality on labelled face sets."""

from facecluster.evaluate.benchmark import (REFERENCES, compare, evaluate_algorithm, oracle_kmeans,
                                            subset_scores, sweep)
from facecluster.evaluate.dataset import LabelledFaces, load_labelled_faces

__all__ = ["REFERENCES", "LabelledFaces", "compare", "evaluate_algorithm", "load_labelled_faces",
           "oracle_kmeans", "subset_scores", "sweep"]
