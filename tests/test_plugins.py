"""Plugin loading: entry points, third-party families and tiny models, conflicts."""

import pytest

from vlm_router import Family, TinyModel, hookimpl
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.family import Capabilities
from vlm_router.plugins import PluginError, load_families, load_tiny_models, plugin_manager


class EchoFamily(Qwen2VLFamily):
    name = "echo"
    model_types = ("echo_vl",)
    capabilities = Capabilities(images=False)


class ThirdParty:
    @hookimpl
    def register_families(self, register):
        register(EchoFamily())


def test_builtin_family_comes_from_the_entry_point_group():
    families = load_families()
    assert families.plugin_of["qwen2_vl"] == "qwen2_vl"
    assert families.for_model_type("qwen2_5_vl") is families.get("qwen2_vl")


def test_a_third_party_plugin_adds_a_family():
    manager = plugin_manager()
    manager.register(ThirdParty(), name="third-party")
    families = load_families(manager)
    assert {"echo", "qwen2_vl"} <= set(families.names())
    assert families.for_model_type("echo_vl").capabilities.images is False
    assert families.plugin_of["echo"] == "third-party"


def test_conflicting_registrations_are_refused():
    class Clash:
        @hookimpl
        def register_families(self, register):
            register(Qwen2VLFamily())

    manager = plugin_manager()
    manager.register(Clash(), name="clash")
    with pytest.raises(PluginError, match="registered by both"):
        load_families(manager)


def test_a_model_type_claimed_twice_is_refused():
    class Copycat(EchoFamily):
        name = "copycat"
        model_types = ("qwen2_vl",)

    class Plugin:
        @hookimpl
        def register_families(self, register):
            register(Copycat())

    manager = plugin_manager()
    manager.register(Plugin(), name="copycat")
    with pytest.raises(PluginError, match="model_type 'qwen2_vl' is claimed by both"):
        load_families(manager)


def test_a_folder_is_matched_by_model_type_then_by_architecture():
    families = load_families()
    assert families.for_config({"model_type": "llava_next"}) is families.get("llava_next")
    fine_tune = {"model_type": "my_gemma3_finetune", "architectures": ["Gemma3ForConditionalGeneration"]}
    assert families.for_config(fine_tune) is families.get("gemma3")
    assert families.for_config({"model_type": "mllama", "architectures": ["MllamaForConditionalGeneration"]}) is None


def test_an_architecture_two_families_list_identifies_neither():
    """EchoFamily inherits Qwen2-VL's architectures; neither family is then picked by them."""
    manager = plugin_manager()
    manager.register(ThirdParty(), name="third-party")
    families = load_families(manager)
    assert families.for_config({"model_type": "x", "architectures": ["Qwen2VLForConditionalGeneration"]}) is None
    assert families.for_config({"model_type": "qwen2_vl"}) is families.get("qwen2_vl")


def test_the_plugin_api_is_one_import():
    """A plugin imports everything it needs from `vlm_router`, as the example plugin does."""
    import ast
    from pathlib import Path

    import vlm_router
    from vlm_router import config, conversation, family

    assert (vlm_router.Family, vlm_router.Capabilities, vlm_router.VideoSupport) == (family.Family, family.Capabilities, config.VideoSupport)
    assert (vlm_router.Message, vlm_router.Image, vlm_router.Text) == (conversation.Message, conversation.Image, conversation.Text)
    example = Path(__file__).parent.parent / "examples/vlm-router-brief/vlm_router_brief/__init__.py"
    imported = {node.module for node in ast.walk(ast.parse(example.read_text())) if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlm_router")}
    assert imported == {"vlm_router"}


def test_builtin_families_are_serving_code_and_tiny_models_a_plugin_of_their_own():
    """Every built-in model type has a tiny model, registered by the `tiny_models` plugin, not by its family."""
    families = load_families()
    manager = plugin_manager()
    tiny = load_tiny_models(manager)
    assert set(tiny) == {t for f in families.families.values() for t in f.model_types}
    assert manager.get_name(manager.hook.register_tiny_models.get_hookimpls()[0].plugin) == "tiny_models"
    assert all(type(f).build_tiny is Family.build_tiny for f in families.families.values())
    assert tiny["qwen2_vl"].presets == ("tiny", "2b")


def test_a_family_building_its_own_tiny_model_still_works_with_a_deprecation_warning(tmp_path):
    class OldStyle(EchoFamily):
        def tiny_model_types(self):
            return {"echo_vl": ("tiny",)}

        def build_tiny(self, model_type, out_dir, preset="tiny"):
            (out_dir / "built").write_text(f"{model_type} {preset}")

    class OldPlugin:
        @hookimpl
        def register_families(self, register):
            register(OldStyle())

    manager = plugin_manager()
    manager.register(OldPlugin(), name="old")
    with pytest.warns(DeprecationWarning, match="register_tiny_models"):
        tiny = load_tiny_models(manager)
    tiny["echo_vl"].build(tmp_path, "tiny")
    assert (tmp_path / "built").read_text() == "echo_vl tiny"


def test_a_tiny_model_registered_twice_is_refused():
    class Twice:
        @hookimpl
        def register_tiny_models(self, register):
            register(TinyModel("qwen2_vl", ("tiny",), lambda out_dir, preset: None))

    manager = plugin_manager()
    manager.register(Twice(), name="twice")
    with pytest.raises(PluginError, match="'qwen2_vl' is registered by both"):
        load_tiny_models(manager)
