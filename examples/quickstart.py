"""The seed's example: the nearest adversarial example of a toy network, found by an LP.

Run: python examples/quickstart.py
"""

import numpy as np

from verifiNN.models.network import Network
from verifiNN.verifier import LPVerifier

W1 = np.array([[1, 0], [0, 1]])
b1 = np.array([1, 1])
W2 = np.array([[0, 1], [1, 0]])
b2 = np.array([2, 2])
network = Network([W1, W2], [b1, b2], activation="ReLU", labeler="argmax")

x_0 = np.array([1, 2])
result = LPVerifier().compute_pointwise_robustness(network, x_0, epsilon=1.5)
print(f"label of x_0: {network.classify(x_0)}")
print(f"robustness:   {result.robustness_status}")
print(f"distance:     {result.pointwise_robustness:.5f}")
print(
    f"example:      {np.round(result.adversarial_example, 5)} -> label "
    f"{network.classify(result.adversarial_example)}"
)
