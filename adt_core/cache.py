"""Where the package keeps what it measures or derives once per machine (cost profiles, LANTERN neighbour
tables): `$ADT_TREE_CACHE`, else `~/.cache/adt-tree`. Deleting the folder is always safe."""
import os


def cache_dir() -> str:
    return os.environ.get("ADT_TREE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "adt-tree"))
