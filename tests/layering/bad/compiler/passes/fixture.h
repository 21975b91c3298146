// Fixture for the layering test: a header of the higher layer (passes).
#pragma once
