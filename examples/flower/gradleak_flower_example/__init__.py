"""A small Flower app (quickstart-pytorch layout) whose server gradleak captures and attacks."""
