import watchkeeper


def test_exports_are_sorted_and_importable() -> None:
    assert watchkeeper.__all__ == sorted(watchkeeper.__all__)
    for name in watchkeeper.__all__:
        assert getattr(watchkeeper, name) is not None, name


def test_version_matches_package_metadata() -> None:
    from importlib.metadata import version

    assert watchkeeper.__version__ == version("watchkeeper")
