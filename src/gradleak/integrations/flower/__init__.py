"""gradleak inside a Flower app (extra ``gradleak[flower]``).

Flower is imported only by the submodules that need it, so ``import gradleak`` never pulls it in.
"""
