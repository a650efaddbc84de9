"""The node signatures under which the pack keeps what its nodes showed (nodes/feedback.py).

The page asks for a cached node's messages by that signature (tests/server/test_browser_feedback.py
runs it in the real frontend); here: equal signatures exactly for the graphs whose node ComfyUI's
cache would answer with the same output.
"""
import copy


def graph(lora="a.safetensors", ckpt="base.safetensors", seed=1):
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "10": {"class_type": "SwDLoraLoader", "inputs": {"model": ["4", 0], "lora_name": lora,
                                                          "strength_model": 1.0}},
        "3": {"class_type": "SwDSampler", "inputs": {"model": ["10", 0], "seed": seed}},
    }


def test_equal_for_the_same_inputs_upstream_and_node_ids_kept(host):
    signature = host.pack.nodes.feedback.signature
    a, b = graph(), copy.deepcopy(graph())
    b["99"] = {"class_type": "Note", "inputs": {}}  # an unrelated node changes nothing
    assert signature(a, "10") == signature(b, "10")
    assert signature(a, "3") == signature(b, "3")


def test_differs_when_the_node_or_anything_upstream_differs(host):
    signature = host.pack.nodes.feedback.signature
    base = graph()
    assert signature(graph(lora="b.safetensors"), "10") != signature(base, "10")
    assert signature(graph(ckpt="other.safetensors"), "10") != signature(base, "10")  # upstream
    assert signature(graph(seed=2), "10") == signature(base, "10")  # downstream: the loader is cached
    assert signature(graph(seed=2), "3") != signature(base, "3")
    relinked = graph()
    relinked["10"]["inputs"]["model"] = ["4", 1]  # another output of the same node
    assert signature(relinked, "10") != signature(base, "10")
