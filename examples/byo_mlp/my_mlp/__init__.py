"""A user's own model, data and loss for flops-fit: an MLP classifier on MNIST-1D.

Nothing here imports flops-fit. The study names these objects by import path in
`conf/byo_mlp/parameters_training.yml`:

    training.model.factory: my_mlp.model:make_mlp      (size_param: width)
    training.data.factory:  my_mlp.data:make_data
    training.loss:          my_mlp.loss:smoothed_cross_entropy
"""
