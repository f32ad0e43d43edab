"""Caption cleaning for LlamaGen t2i prompts, with the standard library only.

LlamaGen (and LANTERN) clean every prompt twice with PixArt's `clean_caption` before T5, and the t2i models
were trained on captions cleaned that way, so the properties that change the T5 input for ordinary
prompts are kept: URL-decoding, lower case, HTML entities and tags removed, URLs and @handles removed,
dashes and quotes unified, runs of dots/underscores/dashes split, whitespace collapsed, stray quotes and
punctuation at the ends dropped.

Deliberately left out (upstream needs `ftfy` and `bs4`, which this package does not depend on):
  * ftfy's mojibake repair (e.g. "cafÃ©" -> "café"): text is only NFC-normalised here;
  * BeautifulSoup's HTML parser: tags are removed with a regular expression;
  * the web-scrape filters (CJK blocks, IP addresses, file names, shop phrases such as "free shipping",
    product codes such as "jc6640"). Hand-written prompts almost never contain these.
So a prompt that is plain English text gives the same T5 input as upstream; scraped captions may differ.
"""
import html
import re
import unicodedata
import urllib.parse

_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)\S+|\b[\w.-]+\.(?:com|net|org|edu|gov|io|co|ru|it)(?:/\S*)?\b")
_TAG = re.compile(r"<[^<>]{1,200}>")
_HANDLE = re.compile(r"@\w+\b")
_DASHES = re.compile("[\u2010-\u2015\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d]+")
_DOUBLE_QUOTES = re.compile("[\u00ab\u00bb\u201c\u201d\u201e\u00b4`]")
_SINGLE_QUOTES = re.compile("[\u2018\u2019\u201a]")
_SYMBOLS = re.compile(r"[#®•©™&@·º½¾¿¡§~()\[\]{}|\\/*]+")
_DOTS = re.compile(r"\.{2,}")
_WORD_JOINERS = re.compile(r"[-_]")


def clean_caption(text: str) -> str:
    """One cleaning pass (upstream applies it twice; `clean_prompt` does the same)."""
    t = urllib.parse.unquote_plus(str(text))
    t = unicodedata.normalize("NFC", t).strip().lower()
    t = t.replace("<person>", "person")
    t = _URL.sub("", t)
    t = html.unescape(html.unescape(t))
    t = _TAG.sub(" ", t)
    t = _HANDLE.sub("", t)
    t = t.replace("\\n", " ")
    t = _DASHES.sub("-", t)
    t = _DOUBLE_QUOTES.sub('"', t)
    t = _SINGLE_QUOTES.sub("'", t)
    t = re.sub(r"[\"']{2,}", '"', t)
    t = _DOTS.sub(" ", t)
    t = _SYMBOLS.sub(" ", t)
    t = re.sub(r"\s+\.\s+", " ", t)
    if len(_WORD_JOINERS.findall(t)) > 3:  # this-is-a-slug / file_name_like_text
        t = _WORD_JOINERS.sub(" ", t)
    t = re.sub(r"(\D[,./])\b", r"\1 ", t)  # a space after punctuation glued to the next word
    t = re.sub(r"\s+", " ", t).strip()
    t = re.sub(r"^[\"']([\s\S]+)[\"']$", r"\1", t)
    t = re.sub(r"^[',_:;-]+", "", t)
    t = re.sub(r"[',_:+-]+$", "", t)
    return t.strip()


def clean_prompt(text: str) -> str:
    return clean_caption(clean_caption(text))
