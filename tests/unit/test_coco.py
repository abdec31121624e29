import numpy as np

from wirewatch import coco


def _masks() -> list[np.ndarray]:
    a = np.zeros((32, 40), bool)
    a[4:10, 5:30] = True
    b = np.zeros((32, 40), bool)
    b[15:28, 20:24] = True
    return [a, b]


def test_rle_roundtrip_and_bbox() -> None:
    for m in _masks():
        rle = coco.encode_mask(m)
        assert isinstance(rle["counts"], str)
        assert np.array_equal(coco.decode_mask(rle, 32, 40), m)
    assert coco.mask_bbox(_masks()[0]) == [5.0, 4.0, 25.0, 6.0]


def _gt() -> dict:
    anns = [coco.annotation(i + 1, 1, m) for i, m in enumerate(_masks())]
    return coco.dataset([{"id": 1, "file_name": "a.png", "height": 32, "width": 40}], anns)


def test_perfect_results_give_ap_one() -> None:
    res = [coco.result(1, m, 0.9) for m in _masks()]
    metrics = coco.coco_metrics(_gt(), res)
    assert metrics["segm.AP"] == 1.0 and metrics["bbox.AP"] == 1.0


def test_empty_results_give_zero() -> None:
    metrics = coco.coco_metrics(_gt(), [])
    assert metrics["segm.AP"] == 0.0 and set(metrics) >= {"bbox.AP50", "segm.APl"}


def test_shifted_mask_fails_high_iou_thresholds() -> None:
    a, b = _masks()
    shifted = np.roll(a, 1, axis=0)  # IoU 5/7 = 0.71 for a 6-row mask moved 1 row
    res = [coco.result(1, shifted, 0.9), coco.result(1, b, 0.8)]
    m = coco.coco_metrics(_gt(), res, iou_types=("segm",))
    assert m["segm.AP50"] == 1.0
    assert m["segm.AP75"] < 1.0


def test_subset_keeps_only_the_chosen_images_and_their_annotations() -> None:
    images = [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 40} for i in (1, 2, 3)]
    anns = [coco.annotation(n + 1, image_id, m)
            for n, (image_id, m) in enumerate([(1, _masks()[0]), (2, _masks()[1]), (3, _masks()[0]), (3, _masks()[1])])]
    part = coco.subset(coco.dataset(images, anns), [images[0], images[2]])
    assert [im["id"] for im in part["images"]] == [1, 3]
    assert [a["id"] for a in part["annotations"]] == [1, 3, 4]
    assert part["categories"] == [coco.CATEGORY]
