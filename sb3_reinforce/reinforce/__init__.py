from sb3_reinforce.reinforce.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, REINFORCEPolicy
from sb3_reinforce.reinforce.reinforce import REINFORCE

__all__ = ["REINFORCE", "CnnPolicy", "MlpPolicy", "MultiInputPolicy", "REINFORCEPolicy"]
