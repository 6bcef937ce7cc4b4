"""Subgraphs are expanded as ComfyUI's frontend expands them to queue (``SubgraphNode.getInnerNodes``,
``ExecutableNodeDTO.resolveInput/resolveOutput``): path ids, links through the input and output
nodes, promoted widgets, bypass and mute inside and of an instance. Files are built by hand in the
format of ``definitions.subgraphs`` (links as objects, input node -10, output node -20)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfyui_gradio.errors import ConfigError, Problem
from comfyui_gradio.forms.catalog import Catalog
from comfyui_gradio.forms.convert import ui_to_api
from tests.test_convert import node, out, slot, workflow

INVERT = "00000000-0000-4000-8000-00000000000a"
SCALE = "00000000-0000-4000-8000-00000000000b"
OUTER = "00000000-0000-4000-8000-00000000000c"


def link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int, type_: str = "IMAGE") -> dict:
    return {"id": link_id, "origin_id": origin, "origin_slot": origin_slot, "target_id": target,
            "target_slot": target_slot, "type": type_}


def io(name: str, type_: str, link_ids: list[int]) -> dict:
    return {"id": f"io-{name}", "name": name, "type": type_, "linkIds": link_ids}


def definition(sub_id: str, name: str, nodes: list[dict], links: list[dict], inputs: list[dict],
               outputs: list[dict]) -> dict:
    return {"id": sub_id, "version": 1, "name": name, "nodes": nodes, "links": links, "inputs": inputs,
            "outputs": outputs, "inputNode": {"id": -10}, "outputNode": {"id": -20}, "widgets": []}


def invert_definition(mode: int = 0) -> dict:
    """image -> ImageInvert (inner id 5) -> IMAGE."""
    return definition(INVERT, "Invert", [node(5, "ImageInvert", inputs=[slot("image", "IMAGE", 1)],
                                              outputs=[out("IMAGE", "IMAGE", [2])], mode=mode)],
                      [link(1, -10, 0, 5, 0), link(2, 5, 0, -20, 0)],
                      [io("image", "IMAGE", [1])], [io("IMAGE", "IMAGE", [2])])


def scale_definition() -> dict:
    """image and a promoted width -> ImageScale (inner id 5, width 100, height 50) -> IMAGE."""
    scale = node(5, "ImageScale", inputs=[slot("image", "IMAGE", 1), slot("width", "INT", 3, widget=True)],
                 outputs=[out("IMAGE", "IMAGE", [2])], widgets=["bilinear", 100, 50, "disabled"])
    return definition(SCALE, "Scale", [scale], [link(1, -10, 0, 5, 0), link(3, -10, 1, 5, 1, "INT"),
                                                link(2, 5, 0, -20, 0)],
                      [io("image", "IMAGE", [1]), io("width", "INT", [3])], [io("IMAGE", "IMAGE", [2])])


def around(sub_id: str, definitions: list[dict], *, instance_mode: int = 0, widgets: Any = None,
           extra_inputs: list[dict] | None = None, **instance: Any) -> dict:
    """LoadImage 1 -> instance 12 of ``sub_id`` -> SaveImage 3."""
    nodes = [
        node(1, "LoadImage", outputs=[out("IMAGE", "IMAGE", [10])], widgets=["cat.png", "image"]),
        node(12, sub_id, inputs=[slot("image", "IMAGE", 10), *(extra_inputs or [])],
             outputs=[out("IMAGE", "IMAGE", [11])], mode=instance_mode, widgets=widgets, **instance),
        node(3, "SaveImage", inputs=[slot("images", "IMAGE", 11)], widgets=["out"]),
    ]
    return workflow(nodes, [[10, 1, 0, 12, 0, "IMAGE"], [11, 12, 0, 3, 0, "IMAGE"]],
                    definitions={"subgraphs": definitions})


LOAD = {"inputs": {"image": "cat.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}}


def save(images: Any = None) -> dict:
    inputs = {"filename_prefix": "out"} if images is None else {"filename_prefix": "out", "images": images}
    return {"inputs": inputs, "class_type": "SaveImage", "_meta": {"title": "Save Image"}}


def invert(image: Any, title: str = "Invert Image") -> dict:
    return {"inputs": {"image": image}, "class_type": "ImageInvert", "_meta": {"title": title}}


# ---------------------------------------------------------------------------- ids and links


def test_inner_nodes_get_path_ids_and_links_run_through_the_borders(catalog: Catalog) -> None:
    assert ui_to_api(around(INVERT, [invert_definition()]), catalog) == {
        "1": LOAD, "12:5": invert(["1", 0]), "3": save(["12:5", 0])}


def test_nested_subgraphs_join_every_instance_id(catalog: Catalog) -> None:
    inner = node(7, INVERT, inputs=[slot("image", "IMAGE", 1)], outputs=[out("IMAGE", "IMAGE", [2])])
    outer = definition(OUTER, "Outer", [inner], [link(1, -10, 0, 7, 0), link(2, 7, 0, -20, 0)],
                       [io("image", "IMAGE", [1])], [io("IMAGE", "IMAGE", [2])])
    assert ui_to_api(around(OUTER, [outer, invert_definition()]), catalog) == {
        "1": LOAD, "12:7:5": invert(["1", 0]), "3": save(["12:7:5", 0])}


def test_two_instances_of_one_subgraph_are_two_sets_of_nodes(catalog: Catalog) -> None:
    wf = around(INVERT, [invert_definition()])
    wf["nodes"].insert(2, node(13, INVERT, inputs=[slot("image", "IMAGE", 11)], outputs=[out("IMAGE", "IMAGE", [12])]))
    wf["links"] = [[10, 1, 0, 12, 0, "IMAGE"], [11, 12, 0, 13, 0, "IMAGE"], [12, 13, 0, 3, 0, "IMAGE"]]
    wf["nodes"][3]["inputs"][0]["link"] = 12
    assert ui_to_api(wf, catalog) == {"1": LOAD, "12:5": invert(["1", 0]), "13:5": invert(["12:5", 0]),
                                      "3": save(["13:5", 0])}


def test_an_input_passed_straight_to_an_output_reaches_what_feeds_the_instance(catalog: Catalog) -> None:
    through = definition(INVERT, "Through", [], [link(1, -10, 0, -20, 0)], [io("image", "IMAGE", [1])],
                         [io("IMAGE", "IMAGE", [1])])
    assert ui_to_api(around(INVERT, [through]), catalog) == {"1": LOAD, "3": save(["1", 0])}


def test_an_unconnected_instance_input_leaves_the_inner_socket_out(catalog: Catalog) -> None:
    wf = around(INVERT, [invert_definition()])
    wf["nodes"][1]["inputs"][0]["link"] = None
    assert ui_to_api(wf, catalog) == {"1": LOAD, "12:5": invert(None) | {"inputs": {}}, "3": save(["12:5", 0])}


def test_an_output_fed_by_nothing_inside_leaves_the_outer_input_out(catalog: Catalog) -> None:
    empty = definition(INVERT, "Nothing", [], [], [io("image", "IMAGE", [])], [io("IMAGE", "IMAGE", [])])
    assert ui_to_api(around(INVERT, [empty]), catalog) == {"1": LOAD, "3": save()}


# ---------------------------------------------------------------------------- promoted widgets


def test_a_promoted_widget_takes_the_instances_saved_value(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], widgets=[64], extra_inputs=[slot("width", "INT", widget=True)])
    assert ui_to_api(wf, catalog)["12:5"]["inputs"] == {
        "upscale_method": "bilinear", "width": 64, "height": 50, "crop": "disabled", "image": ["1", 0]}


def test_a_promoted_list_value_is_boxed(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], widgets=[[1, 2]])
    assert ui_to_api(wf, catalog)["12:5"]["inputs"]["width"] == {"__value__": [1, 2]}


def test_without_a_saved_value_the_inner_widget_keeps_its_own(catalog: Catalog) -> None:
    """Legacy ``proxyWidgets`` instances save ``widgets_values: []``: the inner widgets hold the values."""
    wf = around(SCALE, [scale_definition()], widgets=[])
    wf["nodes"][1]["properties"] = {"proxyWidgets": [["5", "width"]]}
    assert ui_to_api(wf, catalog)["12:5"]["inputs"]["width"] == 100


def test_a_linked_instance_input_overrides_its_promoted_value(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], widgets=[64], extra_inputs=[slot("width", "INT", 20, widget=True)])
    wf["nodes"].insert(0, node(2, "GetImageSize", inputs=[slot("image", "IMAGE", 21)],
                               outputs=[out("width", "INT", [20])]))
    wf["links"] += [[20, 2, 0, 12, 1, "INT"], [21, 1, 0, 2, 0, "IMAGE"]]
    wf["nodes"][1]["outputs"][0]["links"].append(21)
    assert ui_to_api(wf, catalog)["12:5"]["inputs"]["width"] == ["2", 0]


def test_promoted_values_follow_the_subgraphs_inputs_that_feed_widgets(catalog: Catalog) -> None:
    """Only inputs linked to an inner widget take a value; sockets (image) take none."""
    sub = scale_definition()
    sub["inputs"].reverse()  # width first, image second
    sub["links"] = [link(1, -10, 1, 5, 0), link(3, -10, 0, 5, 1, "INT"), link(2, 5, 0, -20, 0)]
    assert ui_to_api(around(SCALE, [sub], widgets=[77]), catalog)["12:5"]["inputs"]["width"] == 77


def test_nested_promotion_reads_the_outermost_unconnected_instance(catalog: Catalog) -> None:
    inner = node(7, SCALE, inputs=[slot("image", "IMAGE", 1), slot("width", "INT", 4, widget=True)],
                 outputs=[out("IMAGE", "IMAGE", [2])], widgets=[55])
    outer = definition(OUTER, "Outer", [inner], [link(1, -10, 0, 7, 0), link(4, -10, 1, 7, 1, "INT"),
                                                 link(2, 7, 0, -20, 0)],
                       [io("image", "IMAGE", [1]), io("width", "INT", [4])], [io("IMAGE", "IMAGE", [2])])
    assert ui_to_api(around(OUTER, [outer, scale_definition()], widgets=[33]), catalog)["12:7:5"]["inputs"][
        "width"] == 33
    outer["links"] = [link(1, -10, 0, 7, 0), link(2, 7, 0, -20, 0)]  # inner instance 7 not fed: its own value
    inner["inputs"][1]["link"] = None
    assert ui_to_api(around(OUTER, [outer, scale_definition()]), catalog)["12:7:5"]["inputs"]["width"] == 55


# ---------------------------------------------------------------------------- bypass and mute


def test_a_bypassed_inner_node_passes_its_input_through(catalog: Catalog) -> None:
    assert ui_to_api(around(INVERT, [invert_definition(mode=4)]), catalog) == {"1": LOAD, "3": save(["1", 0])}


def test_a_muted_inner_node_is_dropped_with_the_links_to_it(catalog: Catalog) -> None:
    assert ui_to_api(around(INVERT, [invert_definition(mode=2)]), catalog) == {"1": LOAD, "3": save()}


def test_a_bypassed_instance_is_not_expanded_and_passes_through(catalog: Catalog) -> None:
    assert ui_to_api(around(INVERT, [invert_definition()], instance_mode=4), catalog) == {
        "1": LOAD, "3": save(["1", 0])}


def test_a_bypassed_instance_passes_by_the_subgraphs_slots_even_when_the_file_saved_fewer(catalog: Catalog) -> None:
    sub = scale_definition()
    sub["inputs"].reverse()  # the instance saved only "image"; by the definition it is input 1
    sub["outputs"][0]["type"] = "IMAGE"
    wf = around(SCALE, [sub], instance_mode=4)
    assert ui_to_api(wf, catalog) == {"1": LOAD, "3": save(["1", 0])}


def test_a_muted_instance_is_not_expanded_nor_sent(catalog: Catalog) -> None:
    assert ui_to_api(around(INVERT, [invert_definition()], instance_mode=2), catalog) == {"1": LOAD, "3": save()}


def test_reroutes_and_primitives_work_inside_a_subgraph(catalog: Catalog) -> None:
    sub = scale_definition()
    sub["nodes"] += [node(8, "Reroute", inputs=[slot("", "*", 1)], outputs=[out("", "IMAGE", [5])]),
                     node(9, "PrimitiveNode", outputs=[out("INT", "INT", [6])], widgets=[300, "fixed"])]
    sub["nodes"][0]["inputs"] = [slot("image", "IMAGE", 5), slot("width", "INT", 3, widget=True),
                                 slot("height", "INT", 6, widget=True)]
    sub["links"] = [link(1, -10, 0, 8, 0), link(5, 8, 0, 5, 0), link(3, -10, 1, 5, 1, "INT"),
                    link(6, 9, 0, 5, 2, "INT"), link(2, 5, 0, -20, 0)]
    assert ui_to_api(around(SCALE, [sub], widgets=[64]), catalog)["12:5"]["inputs"] == {
        "upscale_method": "bilinear", "width": 64, "height": 300, "crop": "disabled", "image": ["1", 0]}


# ---------------------------------------------------------------------------- refused


def test_an_unknown_class_inside_a_subgraph_is_named_by_its_path(catalog: Catalog) -> None:
    sub = invert_definition()
    sub["nodes"][0]["type"] = "SaveImageAdvanced"
    with pytest.raises(ConfigError) as caught:
        ui_to_api(around(INVERT, [sub]), catalog, source="s.json")
    assert caught.value.problems == [Problem("s.json", "nodes.12:5", (
        "'SaveImageAdvanced' needs node SaveImageAdvanced, which this ComfyUI server does not have: install the "
        "custom node that provides it (or update ComfyUI) and restart ComfyUI, or open the workflow in ComfyUI "
        "and save it with Export (API)"))]


def test_a_subgraph_that_contains_itself_is_refused(catalog: Catalog) -> None:
    sub = invert_definition()
    sub["nodes"].append(node(6, INVERT, title="Again"))
    with pytest.raises(ConfigError) as caught:
        ui_to_api(around(INVERT, [sub]), catalog, source="s.json")
    assert caught.value.problems == [Problem("s.json", "nodes.12:6", "subgraph 'Invert' contains itself")]


@pytest.mark.parametrize("bad", [{"id": 9, "origin_id": 5}, [9, 5, "0", -20, 0], "9,5,0,-20,0"])
def test_an_unreadable_inner_link_is_refused(catalog: Catalog, bad: Any) -> None:
    sub = invert_definition()
    sub["links"].append(bad)
    with pytest.raises(ConfigError) as caught:
        ui_to_api(around(INVERT, [sub]), catalog, source="s.json")
    assert caught.value.problems == [Problem("s.json", "nodes.12.links[2]",
                                             f"subgraph 'Invert' has an unreadable link {bad!r}")]


def test_inner_links_saved_as_lists_are_read_too(catalog: Catalog) -> None:
    sub = invert_definition()
    sub["links"] = [[1, -10, 0, 5, 0, "IMAGE"], [2, 5, 0, -20, 0, "IMAGE"]]
    assert ui_to_api(around(INVERT, [sub]), catalog)["3"] == save(["12:5", 0])


def test_a_primitive_node_feeding_an_instance_is_refused(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], title="Resize", extra_inputs=[slot("width", "INT", 30, widget=True)])
    wf["nodes"].append(node(4, "PrimitiveNode", outputs=[out("INT", "INT", [30])], widgets=[10, "fixed"]))
    wf["links"].append([30, 4, 0, 12, 1, "INT"])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="s.json")
    assert caught.value.problems == [Problem("s.json", "nodes.12", (
        "a PrimitiveNode feeds subgraph 'Resize', whose value this converter cannot place; connect it inside the "
        "subgraph, or open the workflow in ComfyUI and save it with Export (API)"))]


def test_a_file_without_subgraphs_is_left_as_it_was(catalog: Catalog) -> None:
    wf = around(INVERT, [])
    wf["nodes"][1] = node(12, "ImageInvert", inputs=[slot("image", "IMAGE", 10)], outputs=[out("IMAGE", "IMAGE", [11])])
    before = copy.deepcopy(wf)
    assert ui_to_api(wf, catalog) == {"1": LOAD, "12": invert(["1", 0]), "3": save(["12", 0])}
    assert wf == before


def test_legacy_proxy_widgets_of_unfed_inner_widgets_with_saved_values_are_refused(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], widgets=[64], title="Resize")
    wf["nodes"][1]["properties"] = {"proxyWidgets": [["5", "width"], ["5", "height"]]}
    wf["definitions"]["subgraphs"][0]["links"][1]["origin_id"] = 9  # width is no longer fed by input -10
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="s.json")
    assert caught.value.problems == [Problem("s.json", "nodes.12", (
        "subgraph 'Resize' saves values for legacy proxy widgets (properties.proxyWidgets), whose order this "
        "converter cannot tell; open the workflow in ComfyUI, save it again, or save it with Export (API)"))]


def test_legacy_proxy_widgets_without_saved_values_keep_the_inner_values(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], widgets=[])
    wf["nodes"][1]["properties"] = {"proxyWidgets": [["5", "height"], ["5", "$$canvas-image-preview"], "odd"]}
    assert ui_to_api(wf, catalog)["12:5"]["inputs"]["height"] == 50
    wf["nodes"][1]["widgets_values"] = [70]  # proxies of fed widgets and previews do not reorder anything
    wf["nodes"][1]["properties"] = {"proxyWidgets": [["5", "width"], ["22", "$$canvas-image-preview"]]}
    assert ui_to_api(wf, catalog)["12:5"]["inputs"]["width"] == 70


def test_what_feeds_an_instance_is_resolved_for_the_instance_inputs_own_type(catalog: Catalog) -> None:
    """``resolveInput(outerLink.target_slot)`` takes the instance input's type ("*" here), so a
    bypassed node before the instance passes its first input, not the one of the inner IMAGE type."""
    sub = invert_definition()
    sub["inputs"][0]["type"] = "*"
    wf = around(INVERT, [sub])
    wf["nodes"].insert(1, node(2, "ImageBlur", mode=4, inputs=[slot("mask", "MASK", 20), slot("image", "IMAGE", 21)],
                               outputs=[out("IMAGE", "IMAGE", [10])]))
    wf["links"] = [[20, 1, 1, 2, 0, "MASK"], [21, 1, 0, 2, 1, "IMAGE"], [10, 2, 0, 12, 0, "IMAGE"],
                   [11, 12, 0, 3, 0, "IMAGE"]]
    assert ui_to_api(wf, catalog)["12:5"]["inputs"] == {"image": ["1", 1]}


def test_an_instance_output_is_resolved_for_the_type_its_reader_wants(catalog: Catalog) -> None:
    """``#resolveSubgraphOutput`` passes the reader's type on: a bypassed inner node then passes
    its IMAGE input, not its first one."""
    blur = node(5, "ImageBlur", mode=4, inputs=[slot("mask", "MASK", 1), slot("image", "IMAGE", 3)],
                outputs=[out("IMAGE", "IMAGE", [2])])
    sub = definition(INVERT, "Pick", [blur], [link(1, -10, 0, 5, 0, "MASK"), link(3, -10, 1, 5, 1),
                                              link(2, 5, 0, -20, 0)],
                     [io("mask", "MASK", [1]), io("image", "IMAGE", [3])], [io("out", "*", [2])])
    wf = around(INVERT, [sub], extra_inputs=[slot("image", "IMAGE", 13)])
    wf["nodes"][1]["inputs"][0] = slot("mask", "MASK", 14)
    wf["links"] += [[13, 1, 0, 12, 1, "IMAGE"], [14, 1, 1, 12, 0, "MASK"]]
    assert ui_to_api(wf, catalog)["3"] == save(["1", 0])


def test_links_missing_inside_and_outside_a_subgraph_are_logged_with_the_file(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    sub = invert_definition(mode=4)
    sub["nodes"][0]["inputs"][0]["link"] = 77  # the bypassed inner node reads a link that is not there
    with caplog.at_level("WARNING", logger="comfyui_gradio.forms.convert"):
        assert ui_to_api(around(INVERT, [sub]), catalog, source="s.json")["3"] == save()
    wf = around(INVERT, [invert_definition()])
    wf["nodes"][1]["inputs"][0]["link"] = 99  # the instance reads a link that is not there
    with caplog.at_level("WARNING", logger="comfyui_gradio.forms.convert"):
        assert ui_to_api(wf, catalog, source="s.json")["12:5"]["inputs"] == {}
    assert caplog.messages == ["s.json: link '12:77' is missing from 'links'; the input is left unconnected",
                               "s.json: link 99 is missing from 'links'; the input is left unconnected"]


@pytest.mark.parametrize("bad", [link(9, -10, 1, 5, 0), link(9, -10, -1, 5, 0), link(9, 5, 0, -20, 1),
                                 link(9, 5, 0, -20, -1)])
def test_a_link_to_a_border_slot_the_subgraph_lacks_is_refused(catalog: Catalog, bad: dict) -> None:
    sub = invert_definition()
    sub["links"].append(bad)
    with pytest.raises(ConfigError) as caught:
        ui_to_api(around(INVERT, [sub]), catalog, source="s.json")
    assert caught.value.problems == [Problem("s.json", "nodes.12.links[2]",
                                             f"subgraph 'Invert' has an unreadable link {bad!r}")]


def test_a_border_slot_within_the_subgraph_is_read(catalog: Catalog) -> None:
    sub = scale_definition()
    sub["outputs"].append(io("again", "IMAGE", [9]))
    sub["links"].append(link(9, -10, 1, -20, 1, "INT"))  # the last input straight to the last output
    assert ui_to_api(around(SCALE, [sub]), catalog)["3"] == save(["12:5", 0])


# ---------------------------------------------------------------------------- what the recordings showed


def test_inner_ids_a_root_node_holds_are_renumbered_after_the_last_node_id(catalog: Catalog) -> None:
    """``deduplicateSubgraphNodeIds`` (frontend 1.58.1); 1.27.10 kept the ids as saved."""
    wf = around(INVERT, [invert_definition()])
    wf["last_node_id"] = 40
    wf["nodes"][0]["id"] = 5  # LoadImage now holds the inner node's id
    wf["links"][0][1] = 5
    wf["nodes"].append(node(41, "Note"))  # 41 is taken too: the next free id is 42
    assert ui_to_api(wf, catalog) == {"5": LOAD, "12:42": invert(["5", 0]), "3": save(["12:42", 0])}
    assert ui_to_api(wf, catalog, frontend="1.27.10") == {"5": LOAD, "12:5": invert(["5", 0]), "3": save(["12:5", 0])}


def test_renumbering_counts_on_from_the_highest_id_kept_and_reads_the_graph_state(catalog: Catalog) -> None:
    first = invert_definition()
    second = copy.deepcopy(invert_definition())
    second["id"] = SCALE
    second["nodes"][0]["id"] = 9
    second["links"] = [[1, -10, 0, 9, 0, "IMAGE"], [2, 9, 0, -20, 0, "IMAGE"]]
    third = copy.deepcopy(first)
    third["id"] = OUTER  # its node 5 collides with the first definition's
    wf = around(INVERT, [first, second, third])
    wf["state"], wf["last_node_id"] = {"lastNodeId": 2}, 99  # the state wins over last_node_id
    wf["nodes"][1]["type"] = OUTER
    assert ui_to_api(wf, catalog)["3"] == save(["12:10", 0])  # after 9, the highest id kept


def test_nested_instances_are_expanded_whatever_their_mode(catalog: Catalog) -> None:
    """``getInnerNodes`` does not look at the mode: a bypassed nested instance passes its input on
    while its inner nodes are still sent; a muted one is read through."""
    for mode, read in ((4, ["1", 0]), (2, ["12:7:5", 0])):
        inner = node(7, INVERT, inputs=[slot("image", "IMAGE", 1)], outputs=[out("IMAGE", "IMAGE", [2])], mode=mode)
        outer = definition(OUTER, "Outer", [inner], [link(1, -10, 0, 7, 0), link(2, 7, 0, -20, 0)],
                           [io("image", "IMAGE", [1])], [io("IMAGE", "IMAGE", [2])])
        assert ui_to_api(around(OUTER, [outer, invert_definition()]), catalog) == {
            "1": LOAD, "12:7:5": invert(["1", 0]), "3": save(read)}


def test_a_bypassed_instance_matches_types_by_the_subgraphs_own_slots(catalog: Catalog) -> None:
    """Output 0 is a MASK by the definition: input 0 (IMAGE) does not fit it, so the reader's type
    picks input 1 (``#getBypassSlotIndex``)."""
    sub = definition(INVERT, "Types", [], [], [io("a", "IMAGE", []), io("b", "IMAGE,MASK", [])],
                     [io("m", "MASK", [])])
    wf = around(INVERT, [sub], instance_mode=4, extra_inputs=[slot("b", "IMAGE,MASK", 13)])
    wf["nodes"][1]["inputs"][0] = slot("a", "IMAGE", 10)
    wf["nodes"][2]["inputs"][0]["type"] = "IMAGE,MASK"
    wf["links"].append([13, 1, 1, 12, 1, "MASK"])
    assert ui_to_api(wf, catalog)["3"] == save(["1", 1])


def test_messages_name_a_subgraph_by_its_name_else_its_id(catalog: Catalog) -> None:
    for name, shown in (("Named", "Named"), ("", INVERT)):
        sub = invert_definition()
        sub["name"] = name
        sub["nodes"].append(node(6, INVERT))
        with pytest.raises(ConfigError) as caught:
            ui_to_api(around(INVERT, [sub]), catalog, source="s.json")
        assert caught.value.problems[0].reason == f"subgraph '{shown}' contains itself"


def test_an_untitled_instance_is_named_by_its_subgraph(catalog: Catalog) -> None:
    wf = around(SCALE, [scale_definition()], extra_inputs=[slot("width", "INT", 30, widget=True)])
    wf["nodes"].append(node(4, "PrimitiveNode", outputs=[out("INT", "INT", [30])], widgets=[10, "fixed"]))
    wf["links"].append([30, 4, 0, 12, 1, "INT"])
    with pytest.raises(ConfigError) as caught:
        ui_to_api(wf, catalog, source="s.json")
    assert caught.value.problems[0].reason.startswith("a PrimitiveNode feeds subgraph 'Scale', ")


def test_renumbering_follows_links_saved_as_lists_and_leaves_odd_entries(catalog: Catalog) -> None:
    sub = invert_definition()
    sub["links"] = [[1, -10, 0, 5, 0, "IMAGE"], [2, 5, 0, -20, 0, "IMAGE"]]
    wf = around(INVERT, [sub])
    wf["nodes"][0]["id"], wf["links"][0][1] = 5, 5  # the root holds 5: inner 5 becomes 13
    assert ui_to_api(wf, catalog) == {"5": LOAD, "12:13": invert(["5", 0]),
                                      "3": save(["12:13", 0])}
    wf["last_node_id"] = "many"  # not a number: counting starts at 0, 1 is free
    assert ui_to_api(wf, catalog)["3"] == save(["12:1", 0])
