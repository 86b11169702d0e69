"""Built-in flavors. Each module integrates one library and imports it lazily."""
