from __future__ import annotations

import numpy as np
import pandas as pd

from aire.model.tabular import TrainedModel
from aire.scoring.encoding import encode


def test_encode_equals_the_preprocessors_transform(german: pd.DataFrame, trained: TrainedModel) -> None:
    prep = trained.preprocessor
    encoded = encode(prep, german)
    np.testing.assert_array_equal(encoded.matrix, prep.transform(german))
    assert not any(mask.any() for mask in encoded.bad_numeric.values())
    assert not any(mask.any() for mask in encoded.unknown_category.values())


def test_bad_numbers_and_new_categories_are_reported_not_raised(german: pd.DataFrame,
                                                                trained: TrainedModel) -> None:
    rows = german.head(4).astype({"age": object}).copy()
    rows.loc[rows.index[0], "age"] = np.nan
    rows.loc[rows.index[1], "age"] = "forty"
    rows.loc[rows.index[2], "purpose"] = "spaceship"
    encoded = encode(trained.preprocessor, rows)
    assert encoded.bad_numeric["age"].tolist() == [True, True, False, False]
    assert encoded.unknown_category["purpose"].tolist() == [False, False, True, False]
    # the unknown slot of 'purpose' is set, as transform would set it
    span = trained.preprocessor.spans()["purpose"]
    assert encoded.matrix[2, span.stop - 1] == 1.0
