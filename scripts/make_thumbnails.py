"""Regenerate workflows/<name>.jpg: the card ComfyUI's template browser shows for each workflow.

The tiny test models make noise, not pictures, so the cards are illustrations drawn here: what the
workflow makes or does, read from the workflow itself (its nodes decide the kind of card, its own
instruction text is quoted). Before/after pictures for inpainting, outpainting, editing and restoration;
the idea, the prompt LLMGA writes from it and the picture side by side for the MLLM workflows. The browser
shows a card at about 254 px wide, half of these 512 px, so no text is smaller than MIN_TEXT_PX.

    .venv/bin/python scripts/make_thumbnails.py            # every workflow in workflows/
    .venv/bin/python scripts/make_thumbnails.py t2i_llmga  # only some

Nothing here needs ComfyUI, a browser or a model: Pillow draws everything, deterministically.
"""

from __future__ import annotations

import io
import json
import math
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
SIZE = (512, 512)
MAX_BYTES = 60_000
MIN_TEXT_PX = 22  # shown at about half size in the template browser: ≥ 11 px on screen
PIC = 232  # side of each illustrated picture

INK = (236, 238, 242)
DIM = (170, 176, 190)
BG = (28, 30, 36)
ACCENT = {"prompt": (64, 116, 214), "edit": (150, 84, 200), "inpaint": (32, 150, 120), "restore": (200, 120, 40)}

# Examples of the long prompts LLMGA writes from a short idea, for the pictures drawn below (illustrations).
WRITTEN = {
    "monster": "A tiny round mouse monster with soft grey fur, big pink ears and bright eyes, on a mossy stone…",
    "monster100": "A towering level-100 mouse monster, armoured in crimson scales, glowing eyes, a golden crown…",
    "nook": "A cozy reading nook by a tall window, a soft armchair, warm lamp light, shelves full of books…",
    "fox": "A majestic red fox with a thick winter coat on a moss-covered boulder at the edge of a forest…",
    "landscape": "A quiet valley at golden hour, a red-roofed cottage by a lake, green hills and a warm sun…",
}


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled FreeType font: the same on every machine


# --- the illustrations -----------------------------------------------------------------------------


def _sky(draw: ImageDraw.ImageDraw, size: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> None:
    for y in range(size):
        t = y / (size - 1)
        draw.line([(0, y), (size, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))


def landscape(winter: bool = False, night: bool = False, variant: int = 0, boat: bool = False) -> Image.Image:
    """A valley with a cottage by a lake; the edit card turns it into a snowy night."""
    s = PIC
    img = Image.new("RGB", (s, s))
    d = ImageDraw.Draw(img)
    _sky(d, s, (18, 24, 60) if night else (110, 170, 235), (60, 70, 120) if night else (250, 214, 160))
    if night:
        d.ellipse([170, 24, 204, 58], fill=(245, 245, 220))
        for i in range(14):
            x, y = (i * 53) % s, (i * 29) % 90 + 6
            d.point([(x, y), (x + 1, y)], fill=(255, 255, 255))
    else:
        d.ellipse([150 - variant * 90, 40, 196 - variant * 90, 86], fill=(255, 220, 90))
    hill_far = (200, 210, 225) if winter else ((90, 150, 90) if variant == 0 else (120, 140, 80))
    hill_near = (235, 240, 248) if winter else ((60, 125, 60) if variant == 0 else (90, 110, 50))
    d.polygon([(0, 140), (60, 100), (130, 135), (190, 95), (s, 130), (s, s), (0, s)], fill=hill_far)
    d.polygon([(0, 170), (80, 140), (160, 165), (s, 145), (s, s), (0, s)], fill=hill_near)
    lake = (40, 60, 110) if night else (80, 140, 200)
    d.ellipse([110, 180, 250, 230], fill=lake)
    # the cottage
    wall = (150, 130, 120) if night else (236, 222, 196)
    d.rectangle([40, 150, 96, 196], fill=wall)
    d.polygon([(32, 152), (68, 120), (104, 152)], fill=(245, 248, 255) if winter else (190, 60, 50))
    d.rectangle([60, 172, 76, 196], fill=(90, 60, 40))
    d.rectangle([46, 160, 58, 172], fill=(255, 210, 100) if night else (120, 170, 220))
    if boat:  # what the inpainting card's mask gets filled with
        d.polygon([(150, 206), (206, 206), (196, 220), (160, 220)], fill=(120, 70, 40))
        d.line([(178, 206), (178, 168)], fill=(80, 50, 30), width=3)
        d.polygon([(180, 170), (180, 203), (204, 203)], fill=(250, 250, 245))
    if winter:
        for i in range(60):
            x, y = (i * 37) % s, (i * 71) % s
            d.ellipse([x, y, x + 3, y + 3], fill=(255, 255, 255))
    return img


def monster(level: int = 1) -> Image.Image:
    """A cartoon mouse monster (the LLMGA paper's example): small and cute at level 1, armoured at 100."""
    s = PIC
    img = Image.new("RGB", (s, s))
    d = ImageDraw.Draw(img)
    big = level > 1
    _sky(d, s, (60, 20, 30) if big else (150, 200, 150), (20, 10, 15) if big else (90, 150, 90))
    d.ellipse([30, 190, 200, 230], fill=(40, 40, 40) if big else (70, 120, 60))
    fur = (150, 40, 40) if big else (160, 160, 170)
    r = 78 if big else 58
    cx, cy = 116, 140 if big else 150
    for ex in (-1, 1):  # ears
        ox = cx + ex * (r - 8)
        d.ellipse([ox - 34, cy - r - 30, ox + 34, cy - r + 38], fill=fur)
        d.ellipse([ox - 20, cy - r - 16, ox + 20, cy - r + 24], fill=(250, 150, 170) if not big else (90, 20, 20))
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fur)
    if big:
        for i in range(7):  # spikes
            a = math.pi * (1.1 + i * 0.13)
            x, y = cx + r * math.cos(a), cy + r * math.sin(a)
            d.polygon(
                [(x - 9, y), (x + 9, y), (cx + (r + 26) * math.cos(a), cy + (r + 26) * math.sin(a))], fill=(90, 20, 20)
            )
        d.polygon(
            [
                (cx - 30, cy - r - 4),
                (cx - 18, cy - r - 34),
                (cx, cy - r - 10),
                (cx + 18, cy - r - 34),
                (cx + 30, cy - r - 4),
            ],
            fill=(240, 200, 60),
        )
    eye = (255, 230, 60) if big else (255, 255, 255)
    for ex in (-1, 1):
        d.ellipse([cx + ex * 26 - 14, cy - 24, cx + ex * 26 + 14, cy + 4], fill=eye)
        d.ellipse([cx + ex * 26 - 6, cy - 16, cx + ex * 26 + 6, cy - 4], fill=(20, 20, 20))
    d.ellipse([cx - 8, cy + 10, cx + 8, cy + 22], fill=(240, 120, 150))
    if big:
        d.polygon([(cx - 24, cy + 30), (cx + 24, cy + 30), (cx, cy + 52)], fill=(250, 250, 240))
    else:
        d.arc([cx - 18, cy + 14, cx + 18, cy + 40], 20, 160, fill=(60, 40, 40), width=3)
    return img


def nook() -> Image.Image:
    """A reading nook by a window."""
    s = PIC
    img = Image.new("RGB", (s, s), (120, 90, 70))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 170, s, s], fill=(90, 60, 45))
    d.rectangle([120, 20, 214, 150], fill=(240, 230, 210))
    d.rectangle([128, 28, 206, 142], fill=(140, 190, 240))
    d.line([(167, 28), (167, 142)], fill=(240, 230, 210), width=5)
    d.line([(128, 85), (206, 85)], fill=(240, 230, 210), width=5)
    d.rectangle([14, 30, 96, 170], fill=(80, 50, 35))
    colors = [(200, 60, 60), (60, 120, 200), (230, 180, 60), (70, 160, 90), (160, 90, 180)]
    for row, y in enumerate((40, 85, 130)):
        for i in range(6):
            d.rectangle([20 + i * 12, y, 29 + i * 12, y + 34], fill=colors[(i + row) % 5])
    d.rounded_rectangle([110, 150, 220, 215], 16, fill=(190, 80, 60))
    d.rounded_rectangle([120, 120, 210, 170], 14, fill=(210, 100, 75))
    d.line([(60, 175), (60, 120)], fill=(60, 60, 60), width=4)
    d.polygon([(40, 120), (80, 120), (70, 96), (50, 96)], fill=(255, 220, 130))
    return img


def fox() -> Image.Image:
    """A red fox on a boulder at the forest edge."""
    s = PIC
    img = Image.new("RGB", (s, s))
    d = ImageDraw.Draw(img)
    _sky(d, s, (200, 220, 235), (240, 240, 245))
    for i in range(6):
        x = 10 + i * 40
        d.polygon([(x, 150), (x + 20, 60 + (i % 2) * 20), (x + 40, 150)], fill=(40, 80, 60))
    d.ellipse([40, 150, 200, 240], fill=(110, 120, 100))
    d.ellipse([50, 150, 190, 180], fill=(90, 140, 80))
    d.ellipse([80, 110, 160, 165], fill=(215, 100, 40))
    d.polygon([(150, 120), (200, 80), (185, 135)], fill=(215, 100, 40))
    d.polygon([(60, 140), (20, 120), (40, 160)], fill=(215, 100, 40))
    d.polygon([(20, 120), (10, 112), (28, 132)], fill=(250, 250, 250))
    d.polygon([(165, 95), (172, 60), (186, 88)], fill=(215, 100, 40))
    d.polygon([(186, 84), (200, 58), (204, 90)], fill=(215, 100, 40))
    d.polygon([(200, 100), (222, 112), (200, 116)], fill=(250, 250, 250))
    d.ellipse([186, 92, 192, 98], fill=(20, 20, 20))
    return img


def edges(img: Image.Image) -> Image.Image:
    """A Canny-like edge picture of an illustration (what a ControlNet gets)."""
    grey = img.convert("L").filter(ImageFilter.FIND_EDGES)
    return grey.point(lambda v: 255 if v > 24 else 0).convert("RGB")


def with_mask(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The picture with the area to repaint shown as a white hatched mask."""
    out = img.copy()
    d = ImageDraw.Draw(out)
    d.rectangle(box, fill=(245, 245, 245))
    for x in range(box[0] - (box[3] - box[1]), box[2], 14):
        d.line(
            [
                (max(x, box[0]), box[1] + max(0, box[0] - x)),
                (min(x + box[3] - box[1], box[2]), box[3] - max(0, x + box[3] - box[1] - box[2])),
            ],
            fill=(230, 80, 80),
            width=3,
        )
    d.rectangle(box, outline=(230, 80, 80), width=3)
    return out


def framed(img: Image.Image, keep: int) -> Image.Image:
    """The picture shrunk to its middle, with the black border LLMGA outpaints into."""
    out = Image.new("RGB", img.size, (0, 0, 0))
    inner = img.crop((keep, keep, img.width - keep, img.height - keep))
    out.paste(inner, (keep, keep))
    return out


def seam(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """An inpainted patch whose brightness and colour do not match: the seam DiffRIR removes."""
    out = img.copy()
    patch = out.crop(box).point(lambda v: min(255, int(v * 1.35 + 18)))
    out.paste(patch, box[:2])
    ImageDraw.Draw(out).rectangle(box, outline=(255, 255, 255), width=1)
    return out


# --- reading a workflow ----------------------------------------------------------------------------


@dataclass
class Card:
    title: str
    kind: str  # prompt | edit | inpaint | restore
    idea: str = ""
    written: str = ""
    before: Image.Image | None = None
    after: Image.Image | None = None
    before_label: str = "before"
    after_label: str = "after"
    caption: str = ""
    tag: str = ""


def _widgets(workflow: dict[str, Any], node_type: str) -> list[list[Any]]:
    return [n.get("widgets_values") or [] for n in workflow["nodes"] if n["type"] == node_type]


def subject(text: str) -> tuple[str, Image.Image]:
    low = text.lower()
    if "monster" in low:
        level = 100 if "100" in low else 1
        return ("monster100" if level == 100 else "monster"), monster(level)
    if "nook" in low or "reading" in low:
        return "nook", nook()
    if "fox" in low:
        return "fox", fox()
    return "landscape", landscape()


def card_for(name: str, workflow: dict[str, Any]) -> Card:
    """Decide from the workflow's nodes what it makes or does, and draw that."""
    types = {n["type"] for n in workflow["nodes"]}
    prompts = _widgets(workflow, "LLMGAGeneratePrompt")
    tasks = [str(w[0]) for w in prompts if w]
    ideas = [str(w[1]) for w in prompts if len(w) > 1 and str(w[1]).strip()]
    long_texts = [str(w[0]) for w in _widgets(workflow, "LLMGALongPromptEncode") if w and str(w[0]).strip()]
    folders = " ".join(str(v) for w in _widgets(workflow, "LLMGACheckpointLoader") for v in w).lower()
    tags = []
    if "LLMGARemoteMLLM" in types:
        tags.append("served MLLM")
    if any("gguf" in t.lower() for t in types) or "gguf" in name.lower():
        tags.append("GGUF")
    if "sdxl" in folders or "sdxl" in name.lower():
        tags.append("SDXL")
    if any(t.startswith("ControlNet") for t in types):
        tags.append("ControlNet")
    tag = " · ".join(tags)

    if "LLMGAInstructionEdit" in types or "LLMGAEditPrompts" in types:
        instruction = next((str(w[0]) for w in _widgets(workflow, "LLMGAEditPrompts") if w), "Edit the picture")
        winter = any(k in instruction.lower() for k in ("snow", "winter"))
        return Card(
            "Edit by instruction",
            "edit",
            before=landscape(),
            after=landscape(winter=winter, night="night" in instruction.lower(), variant=0 if winter else 1),
            caption=f"“{instruction}”",
            tag=tag,
        )
    if "LLMGAInpaintSampler" in types and "LLMGAOutpaintCanvas" in types:
        return Card(
            "Outpainting",
            "inpaint",
            before=framed(landscape(), 52),
            after=landscape(),
            caption="The canvas grows; LLMGA describes the new area; SD paints it; DiffRIR blends",
            tag=tag,
        )
    if "LLMGAInpaintSampler" in types:
        box = (112, 170, 216, 232)
        return Card(
            "Inpainting",
            "inpaint",
            before=with_mask(landscape(), box),
            after=landscape(boat=True),
            caption="Paint a mask; LLMGA imagines what goes there; SD inpaints; DiffRIR blends",
            tag=tag,
        )
    if "LLMGAOutpaintCanvas" in types:
        mask = Image.new("RGB", (PIC, PIC), (255, 255, 255))
        ImageDraw.Draw(mask).rectangle([52, 52, PIC - 53, PIC - 53], fill=(0, 0, 0))
        return Card(
            "Outpaint canvas",
            "inpaint",
            before=framed(landscape(), 52),
            after=mask,
            before_label="canvas",
            after_label="mask",
            caption="Add pixels on each side: the grown canvas and its mask",
            tag=tag,
        )
    if "LLMGADiffRIRRestore" in types:
        box = (100, 150, 232, 232)
        return Card(
            "Seam restoration",
            "restore",
            before=seam(landscape(), box),
            after=landscape(),
            caption="DiffRIR matches the generated area's brightness, colour and texture to the original",
            tag=tag,
        )
    if "similar image" in tasks:
        return Card(
            "Similar image",
            "edit",
            before=landscape(),
            after=landscape(variant=1),
            before_label="your picture",
            after_label="a similar one",
            caption="LLMGA describes the picture in detail; SD renders a new one",
            tag=tag,
        )
    text = ideas[-1] if ideas else (long_texts[0] if long_texts else "")
    key, picture = subject(text)
    if not ideas and long_texts:  # a hand-written long prompt, no assistant
        hint = edges(picture) if "ControlNet" in tags else None
        return Card(
            "Long prompt" + (" + ControlNet" if hint else ""),
            "prompt",
            idea="",
            written=text,
            after=picture,
            before=hint,
            tag=tag,
        )
    if len(ideas) > 1:
        return Card(
            "Multi-turn refinement",
            "prompt",
            idea=" then ".join(f"“{i}”" for i in ideas),
            written=WRITTEN[key],
            after=picture,
            tag=tag,
        )
    hint = edges(picture) if "ControlNet" in tags else None
    return Card(
        "Text to image",
        "prompt",
        idea=f"“{text}”" if text else "",
        written=WRITTEN[key],
        after=picture,
        before=hint,
        tag=tag,
    )


# --- drawing a card --------------------------------------------------------------------------------


def _text(
    d: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    size: int,
    width_px: int,
    lines: int,
    fill: tuple[int, int, int] = INK,
) -> int:
    """Wrapped text; returns the y below it."""
    f = font(size)
    chars = max(8, int(width_px / (size * 0.52)))
    wrapped = textwrap.wrap(text, chars)
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], textwrap.shorten(" ".join(wrapped[lines - 1 :]), chars, placeholder="…")]
    x, y = xy
    for line in wrapped:
        while d.textlength(line, font=f) > width_px and len(line) > 4:
            line = line[:-2] + "…"
        d.text((x, y), line, font=f, fill=fill)
        y += round(size * 1.22)
    return y


def render(card: Card) -> Image.Image:
    img = Image.new("RGB", SIZE, BG)
    d = ImageDraw.Draw(img)
    accent = ACCENT[card.kind]
    d.rectangle([0, 0, SIZE[0], 62], fill=accent)
    d.text((18, 14), card.title, font=font(32), fill=(255, 255, 255), stroke_width=1, stroke_fill=(255, 255, 255))
    y0 = 76
    if card.tag:
        f = font(MIN_TEXT_PX)
        w = d.textlength(card.tag, font=f)
        d.rounded_rectangle([SIZE[0] - w - 30, y0, SIZE[0] - 14, y0 + 34], 8, fill=(60, 64, 76))
        d.text((SIZE[0] - w - 22, y0 + 5), card.tag, font=f, fill=INK)
    if card.kind == "prompt":
        y = y0
        if card.idea:
            y = _text(d, (18, y), "You:", MIN_TEXT_PX, 200, 1, DIM)
            y = _text(d, (18, y), card.idea, 26, 476 - (0 if not card.tag else 150), 2) + 6
        top = max(y + 4, y0 + 44)
        d.rounded_rectangle([12, top, 250, 500], 12, fill=(42, 46, 56))
        yy = _text(d, (24, top + 10), "LLMGA writes:" if card.idea else "Your long prompt:", MIN_TEXT_PX, 216, 1, DIM)
        _text(d, (24, yy + 2), card.written, MIN_TEXT_PX, 216, max(1, (500 - yy - 12) // 27))
        px, py = 264, top
        if card.after is None:
            raise ValueError(f"{card.title}: a prompt card needs its picture")
        if card.before is not None:  # a ControlNet hint above a smaller picture
            small = (500 - top - 8) // 2
            img.paste(card.before.resize((small, small)), (px + (PIC - small) // 2, py))
            img.paste(card.after.resize((small, small)), (px + (PIC - small) // 2, py + small + 8))
        else:
            img.paste(card.after, (px, py + max(0, (500 - py - PIC) // 2)))
        return img
    if card.before is None or card.after is None:
        raise ValueError(f"{card.title}: a before/after card needs both pictures")
    py = y0 + 44
    img.paste(card.before, (16, py))
    img.paste(card.after, (SIZE[0] - 16 - PIC, py))
    mid = SIZE[0] // 2
    d.polygon([(mid - 10, py + PIC // 2 - 14), (mid + 12, py + PIC // 2), (mid - 10, py + PIC // 2 + 14)], fill=INK)
    f = font(MIN_TEXT_PX + 2)
    for label, x in ((card.before_label, 16), (card.after_label, SIZE[0] - 16 - PIC)):
        d.text((x + (PIC - d.textlength(label, font=f)) / 2, py + PIC + 6), label, font=f, fill=DIM)
    _text(d, (18, py + PIC + 42), card.caption, MIN_TEXT_PX + 2, 476, 3)
    return img


def jpeg(img: Image.Image) -> bytes:
    for quality in (85, 78, 70, 60):
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() < MAX_BYTES:
            return out.getvalue()
    raise RuntimeError("the thumbnail does not fit in 60 KB")


def thumbnail(path: Path) -> bytes:
    return jpeg(render(card_for(path.stem, json.loads(path.read_text()))))


def main(names: list[str]) -> None:
    paths = [WORKFLOWS / f"{n}.json" for n in names] if names else sorted(WORKFLOWS.glob("*.json"))
    for path in paths:
        jpg = thumbnail(path)
        path.with_suffix(".jpg").write_bytes(jpg)
        print(f"{path.with_suffix('.jpg').relative_to(REPO)}: {len(jpg) // 1024} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
