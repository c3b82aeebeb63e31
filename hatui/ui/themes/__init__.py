"""Built-in themes (package data): hatui-dark, hatui-light, hatui-contrast, hatui-amber."""
