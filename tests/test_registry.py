import pytest

from oblivio.registry import Registry


def test_register_create_names():
    reg = Registry("widget")

    @reg.register("Big_One")
    def big(size=3):
        return size * 2

    assert reg.names() == ["big-one"]
    assert reg.create("big-one", size=4) == 8
    assert reg.create("BIG_ONE") == 6
    assert "big_one" in reg and "other" not in reg


def test_unknown_key_names_valid_ones():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    reg.register("b")(lambda: 2)
    with pytest.raises(KeyError, match=r"unknown widget 'c'; valid widgets: a, b"):
        reg.get("c")


def test_duplicate_registration_rejected():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a")(lambda: 2)
