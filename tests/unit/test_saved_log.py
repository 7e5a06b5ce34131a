"""The gallery's Save / Zip: A1111's file names in log/images, its log.csv columns, the zip."""

import csv
import zipfile

from PIL import Image

from sdweb.outputs.saved_log import LOG_FIELDS, appended_log, save_to_log

INFOTEXT = ("a cat, on a mat\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, "
            "Size: 64x64, Model hash: abcdef1234, Model: alpha")


def test_save_writes_the_image_with_its_infotext_and_a_csv_row(tmp_path):
    image = Image.new("RGB", (64, 64), "red")
    saved = save_to_log([(image, INFOTEXT)], tmp_path, {"samples_format": "png"})
    assert [path.name for path in saved.images] == ["00000-42.png"] and saved.zip_file is None
    with Image.open(saved.images[0]) as written:
        assert written.info["parameters"] == INFOTEXT
    rows = list(csv.reader(saved.log_csv.open(encoding="utf-8")))
    assert rows == [list(LOG_FIELDS), ["a cat, on a mat", "42", "64", "64", "Euler a", "7", "20", "00000-42.png",
                                       "ugly", "alpha", "abcdef1234"]]
    again = save_to_log([(image, INFOTEXT)], tmp_path, {})
    assert again.images[0].name == "00001-42.png"
    assert len(list(csv.reader(saved.log_csv.open(encoding="utf-8")))) == 3


def test_zip_holds_every_image(tmp_path):
    images = [(Image.new("RGB", (8, 8), colour), INFOTEXT.replace("Seed: 42", f"Seed: {seed}"))
              for seed, colour in ((1, "red"), (2, "blue"))]
    saved = save_to_log(images, tmp_path, {}, make_zip=True)
    assert saved.zip_file is not None and saved.zip_file.name.endswith("_[alpha]_1-2.zip")
    with zipfile.ZipFile(saved.zip_file) as archive:
        assert sorted(archive.namelist()) == ["00000-1.png", "00001-2.png"]
    assert saved.all_paths()[0] == saved.zip_file


def test_an_older_log_gets_the_new_columns():
    old = "prompt,seed,width,height,sampler,cfgs,steps,filename,negative_prompt\nold,1,2,3,x,7,20,f.png,\n"
    rows = list(csv.reader(appended_log(old, ["new"] + [""] * 10).splitlines()))
    assert rows[0] == list(LOG_FIELDS) and len(rows[1]) == len(LOG_FIELDS) and rows[2][0] == "new"
