"""Procedural shapes with captions: colour images whose content a program can read back exactly.

    images, attributes, captions = shapes.sample(1000, seed=0)      # [1000, 3, 32, 32] in [-1, 1]
    captions[0]                        # 'a small red circle at the top left'
    tokens = tokens.encode(captions)   # int64 [1000, MAX_TOKENS], a fixed word vocabulary (toolkit/tokens.py)
    read = shapes.describe(images)     # the attributes read back from the pixels
    shapes.prompt_accuracy(images, attributes)   # {'all': 1.0, 'shape': 1.0, ...}

An image shows one or two objects on black. Each object has a shape (circle, square, triangle),
a colour (5), a size (small, large) and a cell of a 3x3 grid (with a little jitter). Two objects
sit in different cells and have different colours. A one-object caption names all four
attributes; a two-object caption names colour and shape ("a blue square and a yellow triangle").

Rendering is anti-aliased (4x4 samples per pixel) and deterministic from the seed. `describe`
reads any image, generated ones included: each pixel is matched to the nearest colour (its
direction in RGB, so that a dim edge pixel counts for its colour), each colour with enough
pixels is an object, and its soft mask's moments give the rest: the area the size, the centroid
the cell, and two shape statistics the shape (a triangle is skewed, thin at the top; a square, unlike
a disc, keeps x and y independent: E[x²y²] = E[x²] E[y²]).

Held-out combinations (`HELD_OUT`) never appear in the training split, so a model trained on it
can be asked for them to measure composition.
"""

import math

import torch

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
ATTRIBUTES = ("shape", "colour", "size", "position")
NAMES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}
# What a caption names, by the number of objects: what prompt_accuracy checks.
CAPTION_NAMES = {1: ATTRIBUTES, 2: ("shape", "colour")}

SIDE = 32
RGB = torch.tensor([  # in [0, 1]; far apart in direction, so dim edges keep their colour
    [0.92, 0.12, 0.10],  # red
    [0.10, 0.78, 0.18],  # green
    [0.15, 0.32, 1.00],  # blue
    [0.95, 0.85, 0.10],  # yellow
    [0.68, 0.18, 0.90],  # purple
])
BACKGROUND = 0.0  # black, in [0, 1]
RADIUS = (2.8, 4.5)  # the size of a small and a large object, in pixels (a circle's radius)
JITTER = 0.75  # each centre moves up to this many pixels from its cell's centre, in x and y
CELL = SIDE / 3
SUPERSAMPLE = 4
P_TWO = 0.3  # share of two-object images in a draw

# Held out of the training split: (colour, shape, position or None = anywhere), for one and two objects.
HELD_OUT = (
    ("blue", "triangle", None),
    ("green", "circle", "centre"),
    ("yellow", "square", "top left"),
    ("red", "triangle", "bottom right"),
    ("purple", "circle", "right"),
)
SPLITS = ("train", "held_out", "all")

# --- Attributes and captions ---------------------------------------------------------------


def _index(attribute: str, value) -> int:
    names = NAMES[attribute]
    if value not in names:
        raise ValueError(f"{attribute} must be one of {', '.join(names)}; got {value!r}")
    return names.index(value)


def caption_of(attributes: dict, i: int) -> str:
    """The caption of image i of `attributes`."""
    count = int(attributes["count"][i])
    objects = [{a: NAMES[a][int(attributes[a][i, k])] for a in ATTRIBUTES} for k in range(count)]
    if count == 1:
        o = objects[0]
        return f"a {o['size']} {o['colour']} {o['shape']} at the {o['position']}"
    return " and ".join(f"a {o['colour']} {o['shape']}" for o in objects)


def captions_of(attributes: dict) -> list:
    return [caption_of(attributes, i) for i in range(len(attributes["count"]))]


def _held_out_mask(attributes: dict) -> torch.Tensor:
    """bool [N]: the image has an object of a held-out combination."""
    hit = torch.zeros(attributes["count"].shape, dtype=torch.bool)
    for colour, shape, position in HELD_OUT:
        match = (attributes["colour"] == COLOURS.index(colour)) & (attributes["shape"] == SHAPES.index(shape))
        if position is not None:
            match &= attributes["position"] == POSITIONS.index(position)
        hit |= match.any(dim=1)
    return hit


def _draw_attributes(n: int, generator: torch.Generator, p_two: float) -> dict:
    count = 1 + (torch.rand(n, generator=generator) < p_two).long()
    shape = torch.randint(len(SHAPES), (n, 2), generator=generator)
    size = torch.randint(len(SIZES), (n, 2), generator=generator)
    # Two different colours and two different cells: the first k of a random permutation.
    colour = torch.rand(n, len(COLOURS), generator=generator).argsort(dim=1)[:, :2]
    position = torch.rand(n, len(POSITIONS), generator=generator).argsort(dim=1)[:, :2]
    jitter = (torch.rand(n, 2, 2, generator=generator) * 2 - 1) * JITTER
    attributes = {"count": count, "shape": shape, "colour": colour, "size": size, "position": position,
                  "jitter": jitter}
    absent = count == 1
    for key in ATTRIBUTES:
        attributes[key][absent, 1] = -1
    attributes["jitter"][absent, 1] = 0.0
    return attributes


def _held_out_attributes(n: int, generator: torch.Generator) -> dict:
    """n one-object images, each a held-out combination (uniform over them, their sizes and, where
    the combination leaves it free, the position)."""
    pick = torch.randint(len(HELD_OUT), (n,), generator=generator)
    attributes = _draw_attributes(n, generator, p_two=0.0)
    colour = torch.tensor([COLOURS.index(c) for c, _, _ in HELD_OUT])[pick]
    shape = torch.tensor([SHAPES.index(s) for _, s, _ in HELD_OUT])[pick]
    fixed = torch.tensor([POSITIONS.index(p) if p is not None else -1 for _, _, p in HELD_OUT])[pick]
    attributes["colour"][:, 0], attributes["shape"][:, 0] = colour, shape
    attributes["position"][:, 0] = torch.where(fixed >= 0, fixed, attributes["position"][:, 0])
    return attributes


def draw(n: int, seed: int = 0, split: str = "train", p_two: float = P_TWO) -> dict:
    """The attributes of n images: int64 tensors count [n] (1 or 2) and shape, colour, size,
    position [n, 2] (-1 where an image has no second object), and jitter float [n, 2, 2] (x, y).

    split: "train" never draws a held-out combination; "held_out" draws only those (one object
    each); "all" draws from everything.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if not 0.0 <= p_two <= 1.0:
        raise ValueError(f"p_two must be a probability in [0, 1]; got {p_two!r}")
    generator = torch.Generator().manual_seed(seed)
    if split == "held_out":
        return _held_out_attributes(n, generator)
    attributes = _draw_attributes(n, generator, p_two)
    if split == "train":  # redraw the images that show a held-out combination until none does
        bad = _held_out_mask(attributes)
        while bool(bad.any()):
            again = _draw_attributes(int(bad.sum()), generator, p_two)
            for key in attributes:
                attributes[key][bad] = again[key]
            bad = _held_out_mask(attributes)
    return attributes


def from_prompts(prompts, seed: int = 0) -> dict:
    """Attributes for a list of prompts: dicts such as {"shape": "circle", "colour": "red",
    "size": "small", "position": "top left"} (one object) or [{"shape": ..., "colour": ...}, {...}]
    (two). Unnamed attributes of a two-object prompt are drawn (they are not checked)."""
    attributes = draw(len(prompts), seed=seed, split="all", p_two=1.0)
    for i, prompt in enumerate(prompts):
        objects = [prompt] if isinstance(prompt, dict) else list(prompt)
        if len(objects) not in (1, 2):
            raise ValueError(f"prompt {i} must describe one or two objects; got {prompt!r}")
        attributes["count"][i] = len(objects)
        for k, obj in enumerate(objects):
            for key in CAPTION_NAMES[len(objects)]:
                if key not in obj:
                    raise ValueError(f"prompt {i} object {k} lacks {key!r} (a {len(objects)}-object prompt names "
                                     f"{', '.join(CAPTION_NAMES[len(objects)])})")
                attributes[key][i, k] = _index(key, obj[key])
        if len(objects) == 1:
            for key in ATTRIBUTES:
                attributes[key][i, 1] = -1
    return attributes


# --- Rendering -----------------------------------------------------------------------------


def _coverage(shape: torch.Tensor, radius: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of one object per image: [n, SIDE, SIDE]."""
    k = SUPERSAMPLE
    grid = (torch.arange(SIDE * k, dtype=torch.float32) + 0.5) / k  # sample points, in pixels
    x = grid[None, None, :] - centre[:, 0, None, None]
    y = grid[None, :, None] - centre[:, 1, None, None]
    r = radius[:, None, None]
    circle = x**2 + y**2 <= r**2
    half = r * math.sqrt(math.pi) / 2  # the square of the circle's area
    square = (x.abs() <= half) & (y.abs() <= half)
    # An upright equilateral triangle (circumradius R = 1.15 r), its bounding box centred on the centre.
    R = 1.15 * r
    height = 1.5 * R
    top = -height / 2
    # inside when below the apex line pair and above the base: |x| <= (y - top) / sqrt(3)
    triangle = (y >= top) & (y <= top + height) & (x.abs() <= (y - top) / math.sqrt(3))
    inside = torch.where(shape[:, None, None] == 0, circle, torch.where(shape[:, None, None] == 1, square, triangle))
    return inside.float().reshape(-1, SIDE, k, SIDE, k).mean(dim=(2, 4))


def render(attributes: dict, chunk: int = 512) -> torch.Tensor:
    """Images [n, 3, SIDE, SIDE] in [-1, 1] of `attributes` (as `draw` makes them)."""
    n = len(attributes["count"])
    images = torch.empty(n, 3, SIDE, SIDE)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        m = len(attributes["count"][rows])
        image = torch.full((m, 3, SIDE, SIDE), BACKGROUND)
        for k in range(2):
            present = attributes["shape"][rows, k] >= 0
            if not bool(present.any()):
                continue
            position = attributes["position"][rows, k].clamp(min=0)
            centre = torch.stack([(position % 3).float(), (position // 3).float()], dim=1) * CELL + CELL / 2
            centre = centre + attributes["jitter"][rows, k]
            radius = torch.tensor(RADIUS)[attributes["size"][rows, k].clamp(min=0)]
            cover = _coverage(attributes["shape"][rows, k].clamp(min=0), radius, centre) * present[:, None, None]
            colour = RGB[attributes["colour"][rows, k].clamp(min=0)]
            image = image + cover[:, None] * (colour[:, :, None, None] - BACKGROUND)
        images[rows] = image.clamp(0, 1) * 2 - 1
    return images


def sample(n: int, seed: int = 0, split: str = "train", p_two: float = P_TWO):
    """(images [n, 3, 32, 32] in [-1, 1], attributes, captions): n images drawn from `split`
    ("train", "held_out" or "all"; see `draw`), the same for the same seed."""
    attributes = draw(n, seed=seed, split=split, p_two=p_two)
    return render(attributes), attributes, captions_of(attributes)


# --- Reading images back -------------------------------------------------------------------

MIN_PIXELS = 6.0  # a colour needs this much coverage (in pixels) to count as an object
MIN_BRIGHTNESS = 0.25  # a pixel dimmer than this (its strength along its colour, in [0, 1]) is background
_AREA = {}  # expected area of (shape, size), in pixels, for the size threshold


def _areas() -> torch.Tensor:
    """The rendered area [3 shapes, 2 sizes] of each shape and size (measured once)."""
    if "table" not in _AREA:
        shape = torch.arange(3).repeat_interleave(2)
        radius = torch.tensor(RADIUS).repeat(3)
        centre = torch.full((6, 2), SIDE / 2)
        _AREA["table"] = _coverage(shape, radius, centre).sum(dim=(1, 2)).reshape(3, 2)
    return _AREA["table"]


def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1:] != (3, SIDE, SIDE):
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor [N, 3, {SIDE}, {SIDE}] in [-1, 1]; got {got}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1]; got {images.dtype}")
    return images.detach().to("cpu", torch.float32)


def describe(images: torch.Tensor) -> dict:
    """The attributes read back from images [N, 3, 32, 32] in [-1, 1], in the form `draw` gives
    (count, shape, colour, size, position; at most two objects, the larger first; -1 where none).

    Also "objects" [N]: how many colours passed the threshold (more than two means the image is
    not one of ours), and "strength" [N, 5]: each colour's coverage in pixels.
    """
    x = (_check_images(images).clamp(-1, 1) + 1) / 2  # [N, 3, H, W] in [0, 1]
    n = x.shape[0]
    pixels = x.permute(0, 2, 3, 1)  # [N, H, W, 3]
    # Each pixel's strength along every colour (a least-squares alpha) and the distance left over.
    alpha = (pixels @ RGB.T) / (RGB**2).sum(dim=1)  # [N, H, W, 5]
    alpha = alpha.clamp(0, 1)
    residual = (pixels[..., None, :] - alpha[..., None] * RGB).norm(dim=-1)  # [N, H, W, 5]
    nearest = residual.argmin(dim=-1)
    strength = alpha.gather(-1, nearest[..., None])[..., 0]
    weight = torch.where(strength >= MIN_BRIGHTNESS, strength, torch.zeros(()))
    masks = torch.nn.functional.one_hot(nearest, len(COLOURS)).float() * weight[..., None]  # [N, H, W, 5]
    area = masks.sum(dim=(1, 2))  # [N, 5]

    coords = torch.arange(SIDE, dtype=torch.float32) + 0.5
    safe = area.clamp(min=1e-6)
    mx = torch.einsum("nhwk,w->nk", masks, coords) / safe
    my = torch.einsum("nhwk,h->nk", masks, coords) / safe
    dx = coords[None, None, :, None] - mx[:, None, None, :]  # [N, 1, W, 5]
    dy = coords[None, :, None, None] - my[:, None, None, :]  # [N, H, 1, 5]
    mu20 = (masks * dx**2).sum(dim=(1, 2)) / safe
    mu02 = (masks * dy**2).sum(dim=(1, 2)) / safe
    mu22 = (masks * dx**2 * dy**2).sum(dim=(1, 2)) / safe
    mu03 = (masks * dy**3).sum(dim=(1, 2)) / safe
    # An upright triangle has most of its mass low (y grows downwards) and a thin top: skew ~ -0.57.
    skew = mu03 / mu02.clamp(min=1e-6) ** 1.5
    independence = mu22 / (mu20 * mu02).clamp(min=1e-6)  # square ~1, disc ~2/3
    shape = torch.where(skew < -0.2, 2, torch.where(independence > 0.83, 1, 0))
    table = _areas()  # [3, 2]
    threshold = (table[:, 0] * table[:, 1]).sqrt()[shape]  # the geometric mean of small and large
    size = (area > threshold).long()
    col = (mx / CELL).floor().clamp(0, 2).long()
    row = (my / CELL).floor().clamp(0, 2).long()
    position = row * 3 + col

    present = area >= MIN_PIXELS
    order = torch.where(present, area, torch.full_like(area, -1.0)).argsort(dim=1, descending=True)[:, :2]
    found = present.gather(1, order)  # [N, 2]
    result = {"count": found.sum(dim=1), "objects": present.sum(dim=1), "strength": area}
    for key, values in (("shape", shape), ("colour", torch.arange(len(COLOURS)).expand(n, -1)), ("size", size),
                        ("position", position)):
        result[key] = torch.where(found, values.gather(1, order), torch.full((n, 2), -1, dtype=torch.long))
    return result


def _check_attributes(attributes, n: int) -> None:
    if not isinstance(attributes, dict) or any(k not in attributes for k in ("count", *ATTRIBUTES)):
        raise ValueError("attributes must be a dict with count, shape, colour, size and position tensors "
                         "(as shapes.draw, shapes.sample or shapes.from_prompts give them)")
    if len(attributes["count"]) != n:
        raise ValueError(f"attributes describe {len(attributes['count'])} images, but {n} images were given")


def prompt_accuracy(images: torch.Tensor, attributes: dict) -> dict:
    """How often images show what was asked: {"all": the share of images whose read-back
    attributes are all those the caption names, and per attribute "count", "colour", "shape",
    "size", "position": the share of asked objects (of images, for count) read back right}.

    An asked object is found by its colour; its other attributes are then compared with what
    describe read for that colour. Sizes and positions count only for one-object prompts (a
    two-object caption does not name them). Also "n": how many images.
    """
    read = describe(images)
    n = images.shape[0]
    _check_attributes(attributes, n)
    count_ok = read["objects"] == attributes["count"]
    ok_all = count_ok.clone()
    hits = {key: 0 for key in ATTRIBUTES}
    asked = {key: 0 for key in ATTRIBUTES}
    for k in range(2):
        colour = attributes["colour"][:, k]
        present = colour >= 0
        # which read-back slot (0 or 1) holds this colour, if any
        slot = torch.where(read["colour"][:, 0] == colour, 0, torch.where(read["colour"][:, 1] == colour, 1, -1))
        found = present & (slot >= 0)
        ok_all &= ~present | found
        hits["colour"] += int(found.sum())
        asked["colour"] += int(present.sum())
        index = slot.clamp(min=0)[:, None]
        for key in ("shape", "size", "position"):
            named = present & (attributes["count"] == 1) if key in ("size", "position") else present
            right = found & (read[key].gather(1, index)[:, 0] == attributes[key][:, k])
            hits[key] += int((named & right).sum())
            asked[key] += int(named.sum())
            ok_all &= ~named | right
    result = {"all": ok_all.double().mean().item() if n else float("nan"), "n": n,
              "count": count_ok.double().mean().item() if n else float("nan")}
    for key in ATTRIBUTES:
        result[key] = hits[key] / asked[key] if asked[key] else float("nan")
    return result


def chance_accuracy(count: int = 1) -> float:
    """The chance that a uniformly random image reading matches a prompt: for one object all four
    attributes (1 / (3 * 5 * 2 * 9)), for two the colour and shape of both (ignoring their order)."""
    if count == 1:
        return 1.0 / (len(SHAPES) * len(COLOURS) * len(SIZES) * len(POSITIONS))
    return 2.0 / (len(COLOURS) * (len(COLOURS) - 1) * len(SHAPES) ** 2)


if __name__ == "__main__":  # python -m mini_diffusion.toolkit.shapes: the judge's accuracy
    import time

    images, attributes, _ = sample(5000, seed=1, split="all")
    start = time.perf_counter()
    accuracy = prompt_accuracy(images, attributes)
    seconds = time.perf_counter() - start
    print(f"real images (5000, all splits): {accuracy}  ({5000 / seconds:.0f} images/s)")
    noise = torch.rand(5000, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    print(f"uniform noise: {prompt_accuracy(noise, attributes)}")
