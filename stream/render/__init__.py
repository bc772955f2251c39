"""From depth map to picture: normalization, colour maps, layout and the text over it."""
