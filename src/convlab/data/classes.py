"""Class names of the built-in datasets, in label order (the readers and the registry
share them; no file needs reading to know them)."""

from __future__ import annotations

import string


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DIGITS = tuple(string.digits)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")  # hiragana
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # label order of the original batches; also alphabetical, so image folders agree
CIFAR100_FINE = _words("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm
""")
CIFAR100_COARSE = _words("""
aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores
large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores
medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1
vehicles_2
""")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                 "truck")
# EMNIST (Cohen et al. 2017): byclass holds digits, upper and lower case; balanced and
# bymerge merge the 15 letters whose cases look alike; letters holds a..z labelled 1..26
# in the files (0..25 here).
_MERGED = set("cijklmopsuvwxyz")
EMNIST_CLASSES: dict[str, tuple[str, ...]] = {
    "byclass": tuple(sorted(string.digits + string.ascii_letters)),
    "bymerge": tuple(sorted(set(string.digits + string.ascii_letters) - _MERGED)),
    "balanced": tuple(sorted(set(string.digits + string.ascii_letters) - _MERGED)),
    "letters": tuple(string.ascii_lowercase),
    "digits": DIGITS,
    "mnist": DIGITS,
}
EMNIST_SIZES = {"byclass": (697932, 116323), "bymerge": (697932, 116323),
                "balanced": (112800, 18800), "letters": (124800, 20800),
                "digits": (240000, 40000), "mnist": (60000, 10000)}
IMAGENETTE_WNIDS = {  # the folder names, sorted: the label order
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}
