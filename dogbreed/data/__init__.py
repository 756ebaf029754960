"""Data: where a dataset comes from (a dir, split dirs, ``--download``, the generated demo), split discovery
and the checks that stop a run before training, and the Lightning ``DogBreedDataModule``."""
