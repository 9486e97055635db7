"""Damaged data files, made the way real exports damage tables, for the messy-data tests.

Every generator takes a folder, writes one file into it from scikit-learn's bundled sets or from
`tests/data/diamonds_sample.csv` (never from anything outside the repository), and returns a
`Messy` describing it: what to pass to `dlpipe init --target`, and what a correct reader must
find (rows, classes, columns to ignore and why, non-ASCII values that must survive).

Damage is applied to a table of strings and then written with a small CSV writer, so each kind of
damage is one function and any can be combined: no header row, `?` for missing, class labels with
stray spaces and trailing dots, ID columns, a free-text column, rows sorted by the target, a Latin-1
file with accented category values, semicolons, rows with the wrong number of fields, CRLF line
ends and blank trailing lines. All randomness is seeded: the same call writes the same bytes.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "data"
DIAMONDS = DATA / "diamonds_sample.csv"

# A category column whose values only survive when the file's encoding is read correctly.
SHOPS = ["Café Noir", "Über Store", "Zürich Süd", "Señor Diamante", "Ångström AB", "Crème", "Plain Shop", "Lille"]
NON_ASCII_SHOPS = [s for s in SHOPS if not s.isascii()]
DIAMOND_CUTS = {"Fair", "Good", "Very Good", "Premium", "Ideal"}
# fmt: off
WORDS = [
    "customer", "said", "the", "stone", "looked", "cloudy", "under", "shop", "light", "but", "sparkled",
    "outside", "and", "the", "clasp", "was", "loose", "delivery", "came", "late", "box", "damaged", "ring",
    "resized", "twice", "please", "call", "back", "regarding", "refund", "warranty", "certificate", "missing",
    "gift", "wrapped", "nicely", "excellent", "service", "would", "buy", "again", "price", "matched",
    "online", "offer", "engraving", "requested", "initials", "inside", "band", "appraisal", "pending",
    "insurance", "claim", "lost", "receipt",
]
# fmt: on


@dataclass
class Messy:
    """A damaged file and what reading it correctly must give."""

    path: Path
    target: str  # what to pass to `dlpipe init --target` (a name, or a position for a headerless file)
    target_name: str  # the target column's name once read (column_<i> in a headerless file)
    task: str
    rows: int  # data rows a reader must keep (malformed and blank lines excluded)
    header: bool = True
    delimiter: str = ","
    encoding: str = "utf-8"
    malformed: int = 0  # lines with too many fields
    truncated: int = 0  # lines with too few fields
    classes: set[str] | None = None  # the clean class labels
    ignored: dict[str, str] = field(default_factory=dict)  # column (as read) -> words the reason must hold
    texts: set[str] = field(default_factory=set)  # free-text columns (as read) that must become text features
    survive: dict[str, list[str]] = field(default_factory=dict)  # column (as read) -> values that must survive
    missing: dict[str, int] = field(default_factory=dict)  # column (as read) -> cells written as a missing token


# --- clean starting tables -------------------------------------------------------------------


def sklearn_frame(name: str, target: str = "target") -> pd.DataFrame:
    """A bundled set as a table; class targets carry their names (class_0, malignant, setosa)."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    if name != "diabetes":
        names = [str(n) for n in bunch.target_names]
        frame["target"] = frame["target"].map(dict(enumerate(names)))
    return frame.rename(columns={"target": target})


def diamonds_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows of the shipped diamonds sample (3,000 rows), in their file order."""
    frame = pd.read_csv(DIAMONDS)
    return frame.sample(n=rows, random_state=seed).sort_index().reset_index(drop=True)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the string an export would write (floats without noise, missing as '')."""

    def one(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float):
            return repr(round(v, 6)).removesuffix(".0") if float(v).is_integer() else repr(round(v, 6))
        return str(v)

    return frame.apply(lambda c: c.map(one)).astype(object)


# --- damage: each returns a new table of strings -----------------------------------------------


def question_marks(
    frame: pd.DataFrame, columns: list[str], rate: float, rng: np.random.Generator, tokens: tuple[str, ...] = ("?",)
) -> tuple[pd.DataFrame, dict[str, int]]:
    """About `rate` of the cells of `columns` replaced by a missing token ('?', ' ?', 'NA'...)."""
    out = frame.copy()
    counts = {}
    for column in columns:
        hit = rng.random(len(out)) < rate
        hit[0] = False  # keep row 0 whole, so a header check sees a complete first row either way
        out.loc[hit, column] = rng.choice(list(tokens), size=int(hit.sum()))
        counts[column] = int(hit.sum())
    return out, counts


def messy_labels(frame: pd.DataFrame, column: str, rng: np.random.Generator) -> pd.DataFrame:
    """Class labels with stray leading/trailing spaces, and a trailing dot on some rows (UCI adult's '>50K.')."""
    out = frame.copy()
    styles = [
        lambda s: s,
        lambda s: f" {s}",
        lambda s: f"{s} ",
        lambda s: f"  {s}  ",
        lambda s: f"{s}.",
        lambda s: f" {s}.",
    ]
    picks = rng.integers(0, len(styles), size=len(out))
    out[column] = [styles[p](str(v)) for p, v in zip(picks, out[column], strict=True)]
    return out


def id_columns(frame: pd.DataFrame, rng: np.random.Generator, *, contiguous: bool = False) -> pd.DataFrame:
    """A `customer_id` (unique integers; auto-increment when `contiguous`, else with gaps) and a UUID string."""
    out = frame.copy()
    n = len(out)
    if contiguous:
        ids = 100_001 + rng.permutation(n)
    else:
        ids = rng.choice(np.arange(10_000, 10_000 + 20 * n), size=n, replace=False)
    out.insert(0, "customer_id", [str(i) for i in ids])
    out.insert(1, "record_uuid", [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)])
    return out


def free_text(
    frame: pd.DataFrame, rng: np.random.Generator, column: str = "comment", position: int | None = None
) -> pd.DataFrame:
    """A column of 4-14 random words per row, some with commas and quotes (they need CSV quoting)."""
    out = frame.copy()
    notes = []
    for _ in range(len(out)):
        words = list(rng.choice(WORDS, size=int(rng.integers(4, 15))))
        if rng.random() < 0.3:
            words[int(rng.integers(1, len(words)))] += ","
        if rng.random() < 0.1:
            words[0] = f'"{words[0]}"'
        notes.append(" ".join(words).capitalize())
    out.insert(len(out.columns) if position is None else position, column, notes)
    return out


def shop_column(
    frame: pd.DataFrame, rng: np.random.Generator, column: str = "shop", position: int | None = None
) -> pd.DataFrame:
    """A category column with accented values (Café, Über, Zürich...), some padded with spaces."""
    out = frame.copy()
    values = rng.choice(SHOPS, size=len(out))
    pad = rng.random(len(out)) < 0.1
    out.insert(
        len(out.columns) if position is None else position,
        column,
        [f" {v} " if p else str(v) for v, p in zip(values, pad, strict=True)],
    )
    return out


def sort_by(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows sorted by the target, as a report grouped by outcome is exported."""
    key = frame[column].astype(str).str.strip().str.rstrip(".")
    numbers = pd.to_numeric(key, errors="coerce")
    order = numbers.argsort(kind="stable") if numbers.notna().all() else key.argsort(kind="stable")
    return frame.iloc[np.asarray(order)].reset_index(drop=True)


# --- writing -----------------------------------------------------------------------------------


def write(
    frame: pd.DataFrame,
    path: Path,
    *,
    header: bool = True,
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
    malformed: int = 0,
    truncated: int = 0,
    blank_lines: list[str] | None = None,
    separator_space: bool = False,
    seed: int = 0,
) -> tuple[int, int]:
    """Write a table of strings as a CSV export would, with damage only the writer can do.

    `malformed` lines get an extra field (a value with an unquoted delimiter) and `truncated` lines
    lose their last two fields; they are inserted after row 60, so header and delimiter sniffing see
    clean rows. `blank_lines` are appended after the last row. Returns (malformed, truncated) written.
    """
    rng = np.random.default_rng(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writerow([str(c) for c in frame.columns])
    rows = [list(r) for r in frame.itertuples(index=False, name=None)]
    lines = []
    for row in rows:
        one = io.StringIO()
        csv.writer(one, delimiter=delimiter, lineterminator="", quoting=csv.QUOTE_MINIMAL).writerow(row)
        lines.append(one.getvalue())
    bad_at = rng.choice(np.arange(60, len(lines)), size=malformed + truncated, replace=False) if lines else []
    for k, position in enumerate(sorted(bad_at, reverse=True)):
        template = rows[int(rng.integers(0, len(rows)))]
        # a value that held the delimiter, unquoted; or a line the export cut off
        broken = [*template[:1], "oops", *template[1:]] if k < malformed else template[:-2]
        lines.insert(int(position), delimiter.join(str(v) for v in broken))
    sep = f"{delimiter} " if separator_space else delimiter
    if separator_space:
        lines = [line.replace(delimiter, sep) for line in lines]
    text = buffer.getvalue() + "".join(line + "\n" for line in lines)
    if separator_space and header:
        first, rest = text.split("\n", 1)
        text = first.replace(delimiter, sep) + "\n" + rest
    text += "".join(line + "\n" for line in blank_lines or [])
    if newline != "\n":
        text = text.replace("\n", newline)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return malformed, truncated


# --- the damaged files -------------------------------------------------------------------------


def no_header(folder: Path) -> Messy:
    """breast_cancer without a header row; the class label is the last column, given by position."""
    frame = as_text(sklearn_frame("breast_cancer"))
    path = folder / "breast_cancer_no_header.csv"
    write(frame, path, header=False)
    last = frame.shape[1] - 1
    return Messy(
        path, str(last), f"column_{last}", "classification", len(frame), header=False, classes={"malignant", "benign"}
    )


def no_header_target_first(folder: Path) -> Messy:
    """wine without a header, the class first (as UCI's wine.data has it): `--target 0`."""
    frame = sklearn_frame("wine")
    frame = as_text(frame[["target", *[c for c in frame.columns if c != "target"]]])
    frame["target"] = frame["target"].str.replace("class_", "", regex=False).astype(int).add(1).astype(str)
    path = folder / "wine.data"
    write(frame, path, header=False)
    return Messy(path, "0", "column_0", "classification", len(frame), header=False, classes={"1", "2", "3"})


def no_header_negative_position(folder: Path) -> Messy:
    """diabetes (regression) without a header; the target is `-1`, the last column."""
    frame = as_text(sklearn_frame("diabetes", "progression"))
    path = folder / "diabetes_no_header.csv"
    write(frame, path, header=False)
    return Messy(path, "-1", f"column_{frame.shape[1] - 1}", "regression", len(frame), header=False)


def missing_question_marks(folder: Path) -> Messy:
    """diabetes with ~5% of the cells of five columns written `?` (some ` ?`, as UCI files pad them),
    and ~1% of the targets `?` too (those rows cannot be used and must be reported as dropped)."""
    rng = np.random.default_rng(1)
    frame = as_text(sklearn_frame("diabetes", "progression"))
    frame, counts = question_marks(frame, ["age", "bmi", "bp", "s1", "s5"], 0.05, rng, tokens=("?", "?", " ?"))
    frame, target_counts = question_marks(frame, ["progression"], 0.01, rng)
    counts.update(target_counts)
    path = folder / "diabetes_question_marks.csv"
    write(frame, path)
    return Messy(path, "progression", "progression", "regression", len(frame), missing=counts)


def missing_in_categories(folder: Path) -> Messy:
    """diamonds (1,500 rows) with `?` in category and number columns alike, target `cut`."""
    rng = np.random.default_rng(2)
    frame = as_text(diamonds_frame(1500))
    frame, counts = question_marks(frame, ["color", "clarity", "carat", "depth", "x"], 0.05, rng)
    path = folder / "diamonds_question_marks.csv"
    write(frame, path)
    return Messy(
        path,
        "cut",
        "cut",
        "classification",
        len(frame),
        missing=counts,
        classes=DIAMOND_CUTS,
    )


def dirty_labels_binary(folder: Path) -> Messy:
    """breast_cancer with labels like ' benign', 'benign.', '  malignant  ': still two classes."""
    rng = np.random.default_rng(3)
    frame = messy_labels(as_text(sklearn_frame("breast_cancer", "diagnosis")), "diagnosis", rng)
    path = folder / "breast_cancer_dirty_labels.csv"
    write(frame, path)
    return Messy(path, "diagnosis", "diagnosis", "classification", len(frame), classes={"malignant", "benign"})


def dirty_labels_multiclass(folder: Path) -> Messy:
    """iris, UCI style: 'Iris-setosa', ' Iris-setosa.', 'Iris-versicolor ' ... still three classes."""
    rng = np.random.default_rng(4)
    frame = as_text(sklearn_frame("iris", "species"))
    frame["species"] = "Iris-" + frame["species"]
    frame = messy_labels(frame, "species", rng)
    path = folder / "iris_dirty_labels.csv"
    write(frame, path)
    return Messy(
        path,
        "species",
        "species",
        "classification",
        len(frame),
        classes={"Iris-setosa", "Iris-versicolor", "Iris-virginica"},
    )


def with_id_columns(folder: Path) -> Messy:
    """wine with a `customer_id` (unique integers with gaps) and a `record_uuid` column in front."""
    rng = np.random.default_rng(5)
    frame = id_columns(as_text(sklearn_frame("wine", "cultivar")), rng)
    path = folder / "wine_ids.csv"
    write(frame, path)
    return Messy(
        path,
        "cultivar",
        "cultivar",
        "classification",
        len(frame),
        classes={"class_0", "class_1", "class_2"},
        ignored={"customer_id": "ID-like", "record_uuid": "ID-like"},
    )


def with_free_text(folder: Path) -> Messy:
    """diamonds (1,500 rows) with a free-text `comment` column holding commas and quotes; target `price`."""
    rng = np.random.default_rng(6)
    frame = free_text(as_text(diamonds_frame(1500)), rng, position=3)
    path = folder / "diamonds_free_text.csv"
    write(frame, path)
    return Messy(path, "price", "price", "regression", len(frame), texts={"comment"})


def sorted_by_target_classes(folder: Path) -> Messy:
    """wine sorted by its class: a file cut in order would leave classes out of train or test."""
    frame = sort_by(as_text(sklearn_frame("wine", "cultivar")), "cultivar")
    path = folder / "wine_sorted.csv"
    write(frame, path)
    return Messy(path, "cultivar", "cultivar", "classification", len(frame), classes={"class_0", "class_1", "class_2"})


def sorted_by_target_values(folder: Path) -> Messy:
    """diabetes sorted by the target value (regression)."""
    frame = sort_by(as_text(sklearn_frame("diabetes", "progression")), "progression")
    path = folder / "diabetes_sorted.csv"
    write(frame, path)
    return Messy(path, "progression", "progression", "regression", len(frame))


def _latin1_diamonds(frame: pd.DataFrame, path: Path, survive: dict[str, list[str]]) -> Messy:
    """Write a diamonds frame in Latin-1; `cut` is the target, `survive` the accented values to keep."""
    write(frame, path, encoding="latin-1")
    return Messy(
        path, "cut", "cut", "classification", len(frame), encoding="latin-1", classes=DIAMOND_CUTS, survive=survive
    )


def latin1(folder: Path) -> Messy:
    """diamonds (1,500 rows) written in Latin-1, with a `shop` column of accented names (Café Noir, Über Store)."""
    rng = np.random.default_rng(7)
    frame = shop_column(as_text(diamonds_frame(1500)), rng, position=4)
    return _latin1_diamonds(frame, folder / "diamonds_latin1.csv", {"shop": NON_ASCII_SHOPS})


def latin1_sizes(folder: Path) -> Messy:
    """diamonds (1,500 rows) in Latin-1 whose only accents are in a German size label ('Größe S', 'Größe M')."""
    rng = np.random.default_rng(13)
    frame = as_text(diamonds_frame(1500))
    sizes = ["Größe S", "Größe M", "Größe L"]
    frame.insert(1, "ring_size", rng.choice(sizes, size=len(frame)))
    return _latin1_diamonds(frame, folder / "diamonds_sizes_latin1.csv", {"ring_size": sizes})


def latin1_small(folder: Path) -> Messy:
    """iris (150 rows) in Latin-1 with a `shop` column where one value of three is accented ('Über Store')."""
    rng = np.random.default_rng(0)
    frame = as_text(sklearn_frame("iris", "species"))
    frame.insert(0, "shop", rng.choice(["Über Store", "Unter Store", "Mitte"], size=len(frame)))
    path = folder / "iris_shops_latin1.csv"
    write(frame, path, encoding="latin-1")
    return Messy(
        path,
        "species",
        "species",
        "classification",
        len(frame),
        encoding="latin-1",
        classes={"setosa", "versicolor", "virginica"},
        survive={"shop": ["Über Store"]},
    )


def semicolons(folder: Path) -> Messy:
    """diamonds (1,500 rows) delimited by semicolons, decimals with points; target `price`."""
    frame = as_text(diamonds_frame(1500))
    path = folder / "diamonds_semicolon.csv"
    write(frame, path, delimiter=";")
    return Messy(path, "price", "price", "regression", len(frame), delimiter=";")


def malformed_rows(folder: Path) -> Messy:
    """breast_cancer with 5 lines holding an extra field, among 569 good rows."""
    frame = as_text(sklearn_frame("breast_cancer", "diagnosis"))
    path = folder / "breast_cancer_malformed.csv"
    bad, _ = write(frame, path, malformed=5, seed=8)
    return Messy(
        path, "diagnosis", "diagnosis", "classification", len(frame), malformed=bad, classes={"malignant", "benign"}
    )


def truncated_rows(folder: Path) -> Messy:
    """breast_cancer with 3 lines cut short (their last two fields lost), among 569 good rows."""
    frame = as_text(sklearn_frame("breast_cancer", "diagnosis"))
    path = folder / "breast_cancer_truncated.csv"
    _, short = write(frame, path, truncated=3, seed=9)
    return Messy(
        path, "diagnosis", "diagnosis", "classification", len(frame), truncated=short, classes={"malignant", "benign"}
    )


def blank_trailing_lines(folder: Path) -> Messy:
    """iris followed by empty lines and lines of spaces, as editors and exports leave them."""
    frame = as_text(sklearn_frame("iris", "species"))
    path = folder / "iris_blank_lines.csv"
    write(frame, path, blank_lines=["", "", "   ", "", "\t", ""])
    return Messy(
        path, "species", "species", "classification", len(frame), classes={"setosa", "versicolor", "virginica"}
    )


def uci_style(folder: Path) -> Messy:
    """An `adult.data`-like file: no header, ', ' between fields, ' ?' for missing, labels with trailing dots."""
    rng = np.random.default_rng(10)
    frame = as_text(sklearn_frame("iris", "species"))
    frame["species"] = "Iris-" + frame["species"]
    frame, counts = question_marks(frame, ["sepal length (cm)", "petal width (cm)"], 0.05, rng)
    dots = rng.random(len(frame)) < 0.5
    frame.loc[dots, "species"] = frame.loc[dots, "species"] + "."
    path = folder / "iris.data"
    write(frame, path, header=False, separator_space=True, blank_lines=[""])
    return Messy(
        path,
        "4",
        "column_4",
        "classification",
        len(frame),
        header=False,
        classes={"Iris-setosa", "Iris-versicolor", "Iris-virginica"},
        missing={"column_0": counts["sepal length (cm)"], "column_3": counts["petal width (cm)"]},
    )


def _everything_frame(seed: int, contiguous_ids: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    rng = np.random.default_rng(seed)
    frame = as_text(diamonds_frame(1800, seed=seed))
    frame, counts = question_marks(frame, ["carat", "color", "depth", "table", "y"], 0.05, rng)
    frame = messy_labels(frame, "cut", rng)
    frame = id_columns(frame, rng, contiguous=contiguous_ids)
    frame = free_text(frame, rng, column="Bemerkung", position=4)
    frame = shop_column(frame, rng, column="Geschäft", position=6)
    return sort_by(frame, "cut"), counts


def everything(folder: Path) -> Messy:
    """A realistic bad export: Latin-1, ';', CRLF, '?' for missing, dirty and sorted labels, IDs, free text,
    an accented column name and values, 4 lines with an extra field, blank and separator-only trailing lines."""
    frame, counts = _everything_frame(11, contiguous_ids=False)
    path = folder / "export_everything.csv"
    bad, _ = write(
        frame, path, delimiter=";", encoding="latin-1", newline="\r\n", malformed=4, seed=11, blank_lines=["", " ", ""]
    )
    return Messy(
        path,
        "cut",
        "cut",
        "classification",
        len(frame),
        delimiter=";",
        encoding="latin-1",
        malformed=bad,
        classes=DIAMOND_CUTS,
        ignored={"customer_id": "ID-like", "record_uuid": "ID-like"},
        texts={"Bemerkung"},
        survive={"Geschäft": NON_ASCII_SHOPS},
        missing=counts,
    )


def everything_headerless(folder: Path) -> Messy:
    """The same bad export without a header row (auto-increment customer ids); target by position."""
    frame, _ = _everything_frame(12, contiguous_ids=True)
    columns = list(frame.columns)
    path = folder / "export_everything_noheader.csv"
    bad, _ = write(
        frame,
        path,
        header=False,
        delimiter=";",
        encoding="latin-1",
        newline="\r\n",
        malformed=4,
        seed=12,
        blank_lines=["", ""],
    )
    name = {c: f"column_{i}" for i, c in enumerate(columns)}
    return Messy(
        path,
        str(columns.index("cut")),
        name["cut"],
        "classification",
        len(frame),
        header=False,
        delimiter=";",
        encoding="latin-1",
        malformed=bad,
        classes=DIAMOND_CUTS,
        ignored={name["customer_id"]: "ID-like", name["record_uuid"]: "ID-like"},
        texts={name["Bemerkung"]},
        survive={name["Geschäft"]: NON_ASCII_SHOPS},
    )


CASES: dict[str, Callable[[Path], Messy]] = {
    f.__name__: f
    for f in (
        no_header,
        no_header_target_first,
        no_header_negative_position,
        missing_question_marks,
        missing_in_categories,
        dirty_labels_binary,
        dirty_labels_multiclass,
        with_id_columns,
        with_free_text,
        sorted_by_target_classes,
        sorted_by_target_values,
        latin1,
        latin1_sizes,
        latin1_small,
        semicolons,
        malformed_rows,
        truncated_rows,
        blank_trailing_lines,
        uci_style,
        everything,
        everything_headerless,
    )
}


def make_all(folder: Path) -> dict[str, Messy]:
    """Every damaged file, written into `folder`."""
    return {name: make(Path(folder)) for name, make in CASES.items()}


if __name__ == "__main__":  # python tests/messy.py OUT_DIR: write them all, to look at
    import sys

    for name, messy in make_all(Path(sys.argv[1] if len(sys.argv) > 1 else "messy-data")).items():
        print(f"{name:32} {messy.path}  --target {messy.target}")
